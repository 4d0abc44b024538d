"""Demo golden paths: publish the shipped templates idempotently.

local-sandbox is published and active; docker-devcontainer and kubernetes-pod stay drafts with the plain
diagnostic when offline.
"""

from __future__ import annotations

from pathlib import Path

from .services.templates import template_push

GOLDEN_PATHS = Path(__file__).resolve().parent / "golden_paths"
META = {
    "local-sandbox": {
        "name": "Local sandbox",
        "icon": "🧪",
        "description": "Runs anywhere, offline: a checkout of your repository with the chosen AI tools configured.",
        "activate": True,
    },
    "docker-devcontainer": {
        "name": "Docker devcontainer",
        "icon": "🐳",
        "description": "A devcontainer on the team's Docker host (kreuzwerker/docker provider).",
        "activate": True,
    },
    "kubernetes-pod": {
        "name": "Kubernetes pod",
        "icon": "☸",
        "description": "A workspace pod in the team's namespace (hashicorp/kubernetes provider).",
        "activate": True,
    },
}


def seed_golden_paths(stdout=None) -> list[str]:
    """Push each shipped golden path (same content: nothing new); returns one line per template."""
    lines: list[str] = []
    if not GOLDEN_PATHS.is_dir():
        return ["Golden paths not shipped in this build (catalog/golden_paths is missing)."]
    for slug, meta in META.items():
        folder = GOLDEN_PATHS / slug
        if not folder.is_dir():
            continue
        version, _, template = template_push(
            path=folder,
            slug=slug,
            name=meta["name"],
            icon=meta["icon"],
            description=meta["description"],
            owner_team="platform",
            changelog="Shipped with Goldpath.",
            activate=meta["activate"],
        )
        state = "active" if version.is_active else version.status
        line = f"{slug} v{version.number}: {state}"
        if version.status == "draft" and version.diagnostics:
            line += f" ({version.diagnostics.splitlines()[0][:160]})"
        lines.append(line)
    return lines
