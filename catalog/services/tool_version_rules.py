"""The rules of a tool version's fields, in one place.

The version string and its pins, the pinned runtime, the argv template, the environment, the models and the
usage format. Pure functions: each returns the canonical
value or raises `FieldError` with the messages of its field; `services.tool_versions` collects them into one
InvalidInput (400 with field errors) for the API and the pages alike.

Everything here is hostile input that ends up in a sandbox's argv, environment or an installer's command
line, so each grammar is an allow-list: a runtime names one exact release of one registry package (no ranges,
URLs, paths or option-looking text), and the environment never names a variable that could carry or redirect
a secret (keys, tokens, base URLs, proxies) or reshape the sandbox (PATH, HOME, loader and interpreter hooks).
"""

from __future__ import annotations

import re
from typing import Any

from ..models import AITool, RuntimeKind, ToolVersion, UsageFormat, VersionReview

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,49}\Z")
PIN_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,46}\.x\Z")
NPM_NAME_RE = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*\Z")
PYPI_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?\Z")
# exact releases only: semver for npm, a public PEP 440 version for PyPI
NPM_VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?\Z")
PYPI_VERSION_RE = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?\Z")
MODEL_RE = re.compile(r"^[A-Za-z0-9._:/-]{1,200}\Z")
ENV_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,127}\Z")
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# {gateway} is filled by the launcher (catalog.agents.launch) with the model gateway's address in the sandbox
PLACEHOLDERS = ("prompt", "model", "index", "gateway")
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "fish", "cmd", "powershell", "pwsh"})
MAX_ARGV = 64
MAX_ARG_CHARS = 8192
MAX_MODELS = 50
MAX_ENV = 64
MAX_ENV_VALUE_BYTES = 4096

ENV_FORBIDDEN_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "SHELL",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "ENV",
        "BASH_ENV",
        "NODE_OPTIONS",
        "NODE_PATH",
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "NO_PROXY",
    }
)
ENV_FORBIDDEN_PREFIXES = ("LD_", "DYLD_", "PYTHON", "GOLDPATH_", "GIT_", "NPM_CONFIG_", "PIP_")
ENV_FORBIDDEN_SUFFIXES = (
    "_API_KEY",
    "_KEY",
    "_TOKEN",
    "_SECRET",
    "_PASSWORD",
    "_CREDENTIALS",
    "_BASE_URL",
    "_API_BASE",
    "_PROXY",
)


class FieldError(Exception):
    """One field's messages (collected by the service into a 400)."""

    def __init__(self, *messages: str) -> None:
        super().__init__(" ".join(messages))
        self.messages = list(messages)


def _shown(value: Any) -> str:
    return repr(value[:60]) if isinstance(value, str) else "not a string"


# --- the version string and pins ----------------------------------------------------------------


def clean_version(value: Any) -> str:
    """A tool version's own name: letters, digits and `._+-`, up to 50 (it appears in URLs and pins)."""
    if not isinstance(value, str) or not VERSION_RE.match(value):
        raise FieldError("Use 1-50 letters, digits, dots, hyphens, underscores or +, starting with a letter or digit.")
    if value.endswith(".x"):
        raise FieldError("A version ending in .x would read as a pin pattern (2.1.x); choose another name.")
    return value


def version_key(value: str) -> tuple:
    """Order versions numerically where they start with numbers: 2.10.0 > 2.9.1 > 2.9.1rc1; a name without a
    leading number sorts below every numbered one."""
    match = re.match(r"^(\d+(?:\.\d+)*)(.*)$", value)
    if not match:
        return ((), 0, value)
    numbers = tuple(int(part) for part in match.group(1).split("."))
    rest = match.group(2)
    if not rest:
        rank = 1
    elif rest.startswith((".post", "post", "+")):
        rank = 2
    else:
        rank = 0  # a pre-release sorts before its release
    return (numbers, rank, rest)


def pin_matches(pin: str, version: str) -> bool:
    """`2.1.x` matches 2.1.0, 2.1.332 and 2.1.3-beta; anything else matches itself only."""
    if pin.endswith(".x"):
        return version.startswith(pin[:-1])
    return version == pin


def clean_pin(value: Any) -> str:
    """An agent spec's version: an exact version or a prefix pattern ending in `.x`."""
    if isinstance(value, str) and (PIN_PREFIX_RE.match(value) or VERSION_RE.match(value)):
        return value
    raise FieldError("Give an exact version (2.1.332) or a prefix pattern ending in .x (2.1.x).")


# --- runtime -------------------------------------------------------------------------------------


def clean_runtime(value: Any) -> dict[str, str]:
    """{} (built in) or {"kind": "npm"|"pypi", "package": name, "version": exact release}."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise FieldError('Give {"kind": "npm" or "pypi", "package": ..., "version": ...}, or {} for a built-in tool.')
    unknown = sorted(set(value) - {"kind", "package", "version"})
    if unknown:
        raise FieldError(f"Unknown keys: {', '.join(map(str, unknown))}; give kind, package and version only.")
    kind, package, version = value.get("kind"), value.get("package"), value.get("version")
    messages: list[str] = []
    if kind not in RuntimeKind.values:
        messages.append(f"kind: choose one of {', '.join(RuntimeKind.values)}.")
    if not isinstance(package, str) or not package:
        messages.append("package: give the package's name.")
    elif kind == RuntimeKind.NPM and (len(package) > 214 or not NPM_NAME_RE.match(package)):
        messages.append(f"package: {_shown(package)} is not an npm package name (lower case, optional @scope/).")
    elif kind == RuntimeKind.PYPI and (len(package) > 200 or not PYPI_NAME_RE.match(package)):
        messages.append(f"package: {_shown(package)} is not a PyPI project name (no extras, URLs or paths).")
    if not isinstance(version, str) or not version:
        messages.append("version: give the exact release to install.")
    elif kind == RuntimeKind.NPM and not NPM_VERSION_RE.match(version):
        messages.append(f"version: {_shown(version)} is not an exact npm release (e.g. 2.1.332; no ranges or tags).")
    elif kind == RuntimeKind.PYPI and not PYPI_VERSION_RE.match(version):
        messages.append(f"version: {_shown(version)} is not an exact PyPI release (e.g. 0.86.1; no specifiers).")
    if messages:
        raise FieldError(*messages)
    return {"kind": kind, "package": package, "version": version}


# --- launch command ------------------------------------------------------------------------------


def clean_launch_command(value: Any) -> list[str]:
    """An argv template, never a shell: non-empty strings, one holding {prompt}; placeholders from PLACEHOLDERS."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise FieldError("Give a non-empty list of argv strings.")
    if len(value) > MAX_ARGV or any(len(v) > MAX_ARG_CHARS for v in value):
        raise FieldError(f"At most {MAX_ARGV} arguments of {MAX_ARG_CHARS} characters each.")
    if any("\0" in v for v in value):
        raise FieldError("An argument may not contain a NUL character.")
    unknown = sorted({m for v in value for m in PLACEHOLDER_RE.findall(v)} - set(PLACEHOLDERS))
    if unknown:
        allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        raise FieldError(f"Unknown placeholder {', '.join('{' + u + '}' for u in unknown)}; use {allowed}.")
    if not any("{prompt}" in v for v in value):
        raise FieldError("One argument must contain {prompt}.")
    if value[0].rsplit("/", 1)[-1] in SHELLS and any(v in ("-c", "/c", "-Command") for v in value[1:]):
        raise FieldError("A shell command string is not allowed; give the program's argv.")
    return list(value)


# --- environment ---------------------------------------------------------------------------------


def env_name_refusal(name: str) -> str | None:
    """Why this variable may not be set by a tool version (None: it may)."""
    upper = name.upper()
    if (
        upper in ENV_FORBIDDEN_NAMES
        or upper.startswith(ENV_FORBIDDEN_PREFIXES)
        or upper.endswith(ENV_FORBIDDEN_SUFFIXES)
        or upper in {s.lstrip("_") for s in ENV_FORBIDDEN_SUFFIXES}
    ):
        return (
            f"{name[:60]}: may carry or redirect a secret or the sandbox (keys, tokens, base URLs, proxies, PATH, "
            "HOME, loader and interpreter hooks); Goldpath sets those itself."
        )
    if name != upper:
        return f"{name[:60]}: use an UPPER_CASE name."
    if not ENV_NAME_RE.match(name):
        return f"{name[:60]}: use A-Z, digits and _, starting with a letter."
    return None


def clean_env(value: Any) -> dict[str, str]:
    """Non-secret environment for the CLI: UPPER_CASE names to strings of at most 4 KB."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise FieldError('Give an object of names to strings, e.g. {"DISABLE_TELEMETRY": "1"}.')
    if len(value) > MAX_ENV:
        raise FieldError(f"At most {MAX_ENV} variables.")
    messages: list[str] = []
    for name, text in value.items():
        refusal = env_name_refusal(str(name))
        if refusal:
            messages.append(refusal)
        elif not isinstance(text, str):
            messages.append(f"{name}: the value must be a string.")
        elif "\0" in text or len(text.encode()) > MAX_ENV_VALUE_BYTES:
            messages.append(f"{name}: the value must be at most {MAX_ENV_VALUE_BYTES} bytes, without NUL.")
    if messages:
        raise FieldError(*messages)
    return {str(k): v for k, v in value.items()}


# --- models and usage format ---------------------------------------------------------------------


def clean_models(value: Any) -> list[str]:
    """Model names (`[A-Za-z0-9._:/-]{1,200}`), duplicates dropped, order kept (the first is the default)."""
    if value in (None, []):
        return []
    if not isinstance(value, list):
        raise FieldError("Give a list of model names.")
    if len(value) > MAX_MODELS:
        raise FieldError(f"At most {MAX_MODELS} models.")
    bad = [
        f"Entry {i} ({_shown(m)})" for i, m in enumerate(value, 1) if not isinstance(m, str) or not MODEL_RE.match(m)
    ]
    if bad:
        raise FieldError(*(f"{b}: use 1-200 letters, digits and . _ : / -." for b in bad))
    return list(dict.fromkeys(value))


def clean_usage_format(value: Any) -> str:
    if value in (None, ""):
        return UsageFormat.NONE
    if value not in UsageFormat.values:
        raise FieldError(f"Choose one of: {', '.join(UsageFormat.values)}.")
    return value


# --- which version runs -------------------------------------------------------------------------------


def launchable_version(tool: AITool, pin: str | None = None) -> ToolVersion:
    """The approved version an agent of this tool runs: the newest (numerically) approved one with a launch
    command, among those matching `pin` (exact, or a prefix pattern like `2.1.x`) if given. Raises
    tool_version_FieldError saying why none may run."""
    versions = [v for v in tool.versions.all() if pin is None or pin_matches(pin, v.version)]
    runnable = [v for v in versions if v.review_state == VersionReview.APPROVED and v.launch_command]
    if runnable:
        return max(runnable, key=lambda v: (version_key(v.version), v.created_at, v.pk))
    if pin is None:
        raise FieldError(f"{tool.name} has no approved version with a headless launch command.")
    if pin.endswith(".x"):
        raise FieldError(f"{tool.slug} has no approved version matching {pin}.")
    if not versions:
        raise FieldError(f"{tool.slug} has no version {pin}.")
    if versions[0].review_state != VersionReview.APPROVED:
        raise FieldError(f"{tool.slug} {pin} is {versions[0].review_state}, not approved.")
    raise FieldError(f"{tool.slug} {pin} has no headless launch command.")
