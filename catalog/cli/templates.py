"""`goldpath templates push DIR`: upload a Terraform folder as a new template version, validate, publish."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .client import Client
from .errors import ApiError, CliError
from .output import JsonOption, err, note, print_json, say

app = typer.Typer(help="Golden-path templates (platform engineers).", no_args_is_help=True)

# what the portal leaves out of a template folder anyway (catalog.services.templates.read_folder)
SKIP_PARTS = (".terraform", ".git", "__pycache__")  # an installed copy of a golden path has compiled .py files
SKIP_NAMES = (".terraform.lock.hcl", "terraform.tfstate", "terraform.tfstate.backup")
POLL_S = 0.5


def archive(folder: Path) -> tuple[bytes, int]:
    """The folder's regular files as a .tar.gz (paths relative to the folder; no links, state or caches)."""
    buffer = io.BytesIO()
    count = 0
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if any(part in SKIP_PARTS for part in rel.parts) or path.name in SKIP_NAMES or path.is_symlink():
                continue
            if path.is_file():
                info = tar.gettarinfo(str(path), arcname=rel.as_posix())
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o644
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
                count += 1
    return buffer.getvalue(), count


def _upload(client: Client, slug: str, data: bytes, changelog: str) -> tuple[dict[str, Any], bool]:
    try:
        response = client.request(
            "POST",
            f"templates/{slug}/versions/",
            files={"archive": (f"{slug}.tar.gz", data, "application/gzip")},
            data={"changelog": changelog},
        )
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(
                f"No template {slug!r} on the portal: a platform engineer creates the template first "
                "(the API pushes versions of existing templates only)."
            ) from exc
        raise
    return response.json(), response.status_code == 201


def _validated(client: Client, slug: str, number: int, timeout: float) -> dict[str, Any]:
    """Wait until the portal's worker has validated the version (published, or a draft with diagnostics)."""
    deadline = time.monotonic() + timeout
    with err.status(f"Validating {slug} v{number} (terraform init + validate)..."):
        while True:
            version = client.get(f"templates/{slug}/versions/{number}/")
            if version["status"] != "draft" or version.get("diagnostics"):
                return version
            if time.monotonic() > deadline:
                raise CliError(
                    f"{slug} v{number} is still waiting for validation after {timeout:.0f}s: "
                    "is the portal's worker running?"
                )
            time.sleep(POLL_S)


@app.command("push")
def push(
    folder: Annotated[Path, typer.Argument(help="The template folder (Terraform files).")],
    slug: Annotated[
        str | None, typer.Option("--slug", help="The template's slug (default: the folder's name).")
    ] = None,
    message: Annotated[str, typer.Option("--message", "-m", help="The version's changelog.")] = "",
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Validate and publish (default).")] = True,
    activate: Annotated[bool, typer.Option("--activate", help="Make it the version new workspaces use.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for validation.")] = 300.0,
    json_output: JsonOption = False,
) -> None:
    """Upload a folder as a new version of a template; print the validation errors when it does not publish."""
    folder = folder.expanduser()
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder.", exit_code=2)
    slug = slug or folder.resolve().name
    data, count = archive(folder)
    if not count:
        raise CliError(f"{folder} has no files to push.")
    with Client.from_config() as client:
        version, created = _upload(client, slug, data, message)
        number = version["number"]
        if not json_output:
            note(
                f"Uploaded {count} files: {slug} v{number} " + ("created." if created else "(same content as before).")
            )
        if publish and version["status"] == "draft" and not version.get("diagnostics"):
            client.post(f"templates/{slug}/versions/{number}/publish/")
            version = _validated(client, slug, number, timeout)
        if activate and version["status"] == "published" and not version.get("is_active"):
            client.post(f"templates/{slug}/versions/{number}/activate/")
            # read it back: the activate answer's `is_active` is computed before the template changed
            version = client.get(f"templates/{slug}/versions/{number}/")
    failed = publish and version["status"] != "published"
    if json_output:
        print_json({"template": slug, "created": created, **version})
    elif not failed:
        params = ", ".join(p["name"] for p in version.get("parameters") or []) or "none"
        say(
            f"{slug} v{number} is {version['status']}"
            + (" and active" if version.get("is_active") else "")
            + f" (hash {str(version.get('content_hash'))[:12]}, parameters: {params})."
        )
    if failed:
        if not json_output:
            err.print(version.get("diagnostics") or "", markup=False, highlight=False)
        raise CliError(f"{slug} v{number} did not pass validation and stays a draft.")
