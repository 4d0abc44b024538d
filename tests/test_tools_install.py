"""`manage.py tools_install` against the real registries: small pinned packages (is-number, left-pad from npm, six
from PyPI) installed into TOOLS_DIR, once, readable by a sandbox uid, and readable errors when they cannot be."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.runtimes import MARKER
from tests.factories import ToolFactory, ToolVersionFactory

ROOT = Path(__file__).resolve().parent.parent
NPM = {"kind": "npm", "package": "is-number", "version": "7.0.0"}
PYPI = {"kind": "pypi", "package": "six", "version": "1.16.0"}
needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


@pytest.fixture
def tools(settings, tmp_path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    settings.GOLDPATH = {**settings.GOLDPATH, "TOOLS_DIR": str(home / "tools")}
    return home / "tools"


def _version(slug: str, runtime: dict, *, version: str = "1.0.0", tool_status: str = "approved", **kw):
    tool = ToolFactory(slug=slug, status=tool_status) if isinstance(slug, str) else slug
    return ToolVersionFactory(tool=tool, version=version, runtime=runtime, **kw)


def _install(*args: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("tools_install", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def _readable_by_others(top: Path) -> bool:
    for dirpath, _dirs, files in os.walk(top):
        if stat.S_IMODE(os.stat(dirpath).st_mode) & 0o005 != 0o005:
            return False
        for name in files:
            path = Path(dirpath) / name
            if not path.is_symlink() and not os.stat(path).st_mode & stat.S_IROTH:
                return False
    return True


@needs_npm
@pytest.mark.django_db
def test_npm_and_pypi_runtimes_install_once_and_are_readable(tools):
    _version("numbers", NPM, version="7.0.0")
    _version("sixer", PYPI, version="1.16.0")
    out, error = _install("numbers@7.0.0", "sixer")
    assert error is None, out
    lines = out.splitlines()
    assert lines[0].startswith("numbers@7.0.0: installing is-number@7.0.0 (npm) ... done in ")
    assert lines[1].startswith("sixer@1.16.0: installing six==1.16.0 (pypi) ... done in ")

    npm_dir, pypi_dir = tools / "numbers" / "7.0.0", tools / "sixer" / "1.16.0"
    assert json.loads((npm_dir / "node_modules" / "is-number" / "package.json").read_text())["version"] == "7.0.0"
    assert json.loads((npm_dir / MARKER).read_text()) == NPM
    assert json.loads((pypi_dir / MARKER).read_text()) == PYPI
    assert os.readlink(pypi_dir / "venv" / "bin" / "python3").startswith("/usr/bin/python3")
    # the venv's scripts find their python beside them (the folder is seen at /opt/goldpath/tool in a sandbox)
    assert (pypi_dir / "venv" / "bin" / "pip").read_text().startswith("#!/bin/sh\n'''exec' \"$(dirname")
    pip = subprocess.run([pypi_dir / "venv" / "bin" / "pip", "show", "six"], capture_output=True, text=True)
    assert "Version: 1.16.0" in pip.stdout
    assert _readable_by_others(npm_dir) and _readable_by_others(pypi_dir)  # though this process's umask is 077
    assert stat.S_IMODE(tools.parent.stat().st_mode) == 0o700  # the home stays private
    assert sorted(p.name for p in (tools / "numbers").iterdir() if not p.name.endswith(".lock")) == ["7.0.0"]

    marker_before = (npm_dir / MARKER).stat().st_mtime_ns
    out, error = _install("numbers@7.0.0", "sixer@1.16.0")
    assert error is None
    assert out.splitlines() == ["numbers@7.0.0: already installed", "sixer@1.16.0: already installed"]
    assert (npm_dir / MARKER).stat().st_mtime_ns == marker_before


@needs_npm
@pytest.mark.django_db
def test_a_runtime_stays_readable_and_a_tightened_one_is_repaired(tools):
    """GOLDPATH_HOME's start-up tightening (catalog.homefiles) leaves `tools/` alone (a sandbox uid reads the
    runtimes); one made owner-only by hand is repaired on the next use."""
    from catalog.homefiles import tighten
    from catalog.runtimes import ensure_installed

    version = _version("numbers", NPM, version="7.0.0")
    path = ensure_installed(version)
    tighten(tools.parent)
    assert _readable_by_others(path)
    for folder, _dirs, files in os.walk(path):
        os.chmod(folder, 0o700)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o600)
    assert not _readable_by_others(path)
    assert ensure_installed(version) == path and _readable_by_others(path)


@needs_npm
@pytest.mark.django_db
def test_all_approved_installs_approved_versions_of_approved_tools_only(tools):
    tool = ToolFactory(slug="numbers", status="approved")
    _version(tool, NPM, version="7.0.0")
    _version(tool, {**NPM, "version": "6.0.0"}, version="6.0.0", review_state="proposed")
    _version(tool, {}, version="0.1.0")  # built in
    _version("padder", {"kind": "npm", "package": "left-pad", "version": "1.3.0"}, version="1.3.0")
    _version("proposed-tool", {**NPM, "version": "5.0.0"}, version="5.0.0", tool_status="proposed")
    out, error = _install("--all-approved")
    assert error is None, out
    assert [line.split(":")[0] for line in out.splitlines()] == ["numbers@7.0.0", "padder@1.3.0"]
    assert sorted(p.name for p in tools.iterdir()) == ["numbers", "padder"]
    assert (tools / "padder" / "1.3.0" / "node_modules" / "left-pad").is_dir()


@pytest.mark.django_db
def test_unknown_tools_and_versions_are_named_and_nothing_installs(tools):
    _version("numbers", NPM, version="7.0.0", review_state="proposed")
    out, error = _install("numbers@7.0.0", "nope", "numbers@9.9.9", "numbers")
    assert error is not None and out == ""
    message = str(error)
    assert "no tool 'nope'" in message and "numbers has no version '9.9.9'" in message
    assert "numbers has no approved version (name one: numbers@<version>)" in message
    assert not tools.exists()
    with pytest.raises(CommandError, match="Name tools"):
        call_command("tools_install")


@pytest.mark.django_db
def test_a_tool_without_runtime_says_so(tools):
    _version("demo", {}, version="1.0.0")
    out, error = _install("demo")
    assert error is None and out == "demo@1.0.0: built in, no runtime to install\n"


BAD_SPECS = [
    {"kind": "npm", "package": "--global", "version": "1.0.0"},
    {"kind": "npm", "package": "is-number", "version": "^7.0.0"},
    {"kind": "npm", "package": "is-number", "version": "7.0.0 --registry=http://evil"},
    {"kind": "npm", "package": "github:evil/pkg", "version": "1.0.0"},
    {"kind": "pypi", "package": "six", "version": ">=1.0"},
    {"kind": "pypi", "package": "six", "version": "1.16.0; --index-url http://evil"},
    {"kind": "pypi", "package": "git+https://evil/x", "version": "1.0"},
    {"kind": "pypi", "package": "./local", "version": "1.0"},
    {"kind": "apt", "package": "curl", "version": "1.0"},
]


@pytest.mark.django_db
def test_bad_specs_are_rejected_without_running_npm_or_pip(tools, settings, tmp_path):
    spy = tmp_path / "npm-spy"
    ran = tmp_path / "npm-ran"
    spy.write_text(f"#!/bin/sh\ntouch {ran}\n")
    spy.chmod(0o755)
    settings.GOLDPATH = {**settings.GOLDPATH, "NPM": str(spy)}
    tool = ToolFactory(slug="bad", status="approved")
    for i, spec in enumerate(BAD_SPECS):
        _version(tool, spec, version=f"1.{i}.0")
    out, error = _install(*[f"bad@1.{i}.0" for i in range(len(BAD_SPECS))])
    lines = out.splitlines()
    assert len(lines) == len(BAD_SPECS) and all(": failed: The runtime of bad@" in line for line in lines)
    assert "is not an npm package name" in lines[0] and "is not an exact npm release" in lines[1]
    assert "is not a PyPI project name" in lines[6] and "kind: choose one of npm, pypi" in lines[8]
    assert error is not None and f"{len(BAD_SPECS)} of {len(BAD_SPECS)} runtimes were not installed" in str(error)
    assert not ran.exists() and not tools.exists()  # no installer ran, no folder was made


@needs_npm
@pytest.mark.django_db
def test_registry_answers_are_reported_readably(tools, monkeypatch):
    tool = ToolFactory(slug="reg", status="approved")
    _version(tool, {**NPM, "version": "99.0.0"}, version="1.0.0")
    _version(tool, {**NPM, "package": "goldpath-no-such-package-xyz"}, version="2.0.0")
    _version(tool, {**PYPI, "version": "99.0"}, version="3.0.0")
    out, error = _install("reg@1.0.0", "reg@2.0.0", "reg@3.0.0")
    lines = out.splitlines()
    assert lines[0].endswith("failed: npm package is-number has no version 99.0.0 in the registry.")
    assert lines[1].endswith("failed: npm package goldpath-no-such-package-xyz was not found in the registry.")
    assert lines[2].endswith("failed: PyPI package six has no version 99.0 in the package index.")
    assert error is not None and "3 of 3" in str(error) and "Traceback" not in out
    assert sorted(p.name for p in (tools / "reg").iterdir()) == [".1.0.0.lock", ".2.0.0.lock", ".3.0.0.lock"]

    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    _version(tool, NPM, version="4.0.0")
    out, error = _install("reg@4.0.0")
    assert out.rstrip().endswith(
        "failed: The npm registry could not be reached (ECONNREFUSED) to install is-number@7.0.0."
    )


@pytest.mark.django_db
def test_missing_npm_is_reported_and_the_others_still_install(tools, monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    _version("numbers", NPM, version="7.0.0")
    _version("sixer", PYPI, version="1.16.0")
    out, error = _install("numbers", "sixer")
    lines = out.splitlines()
    assert lines[0] == (
        "numbers@7.0.0: installing is-number@7.0.0 (npm) ... failed: Node.js and npm are needed to install "
        "is-number@7.0.0 (npm): install Node.js (apt-get install nodejs npm)."
    )
    assert lines[1].startswith("sixer@1.16.0: installing six==1.16.0 (pypi) ... done in ")
    assert error is not None and "1 of 2 runtimes were not installed: numbers@7.0.0" in str(error)
    assert not (tools / "numbers" / "7.0.0").exists() and (tools / "sixer" / "1.16.0" / MARKER).exists()


CONCURRENT = """
import os, sys, time
import django
django.setup()
from catalog.models import AITool, ToolVersion
from catalog.runtimes import ensure_installed
version = ToolVersion(tool=AITool(slug="numbers"), version="7.0.0", runtime=dict(kind="npm", package="is-number",
                      version="7.0.0"))
print("polling", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
path = ensure_installed(version, progress=lambda line: print(line, flush=True))
print("ready", path, flush=True)
"""


@needs_npm
def test_two_processes_install_a_runtime_once(tmp_path):
    """Two workers start the same runtime's first run together: one installs, the other waits and uses it."""
    tools = tmp_path / "tools"
    go = tmp_path / "go"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "GOLDPATH_HOME": str(tmp_path / "home"),
        "GOLDPATH_TOOLS_DIR": str(tools),
        "PYTHONPATH": str(ROOT),
    }
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(go)], cwd=ROOT, env=env, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == b"polling\n"
    go.touch()  # both are set up and polling: they ask for the runtime within milliseconds of each other
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    text = "\n".join(outputs)
    assert text.count("installing is-number@7.0.0 (npm)") == 1, outputs
    assert text.count("waiting for another install of is-number@7.0.0 (npm)") == 1, outputs
    assert text.count(f"ready {tools / 'numbers' / '7.0.0'}") == 2
    assert sorted(p.name for p in (tools / "numbers").iterdir()) == [".7.0.0.lock", "7.0.0"]
