"""The Goldpath workspace agent (agent.py): a standalone, standard-library-only program started inside each
workspace. It is copied into sandboxes and containers as a file and never imports Goldpath or Django.

Container templates reference `${path.module}/goldpath_workspace_agent.py` and `goldpath_start.sh`: the portal
writes them beside every template version's files when it validates or builds one (support_files), so each build
ships the portal's current agent and no template keeps a copy of its own."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SUPPORT_FILES = {"goldpath_workspace_agent.py": HERE / "agent.py", "goldpath_start.sh": HERE / "start.sh"}


def support_files() -> dict[str, str]:
    """name -> text of the files every template folder gets from the portal (they win over a template's own)."""
    return {name: path.read_text() for name, path in SUPPORT_FILES.items()}
