"""The demo organisation `seed_demo` creates: real tools with true metadata, built through services."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path

USERS = [
    # username, role, member of, manager of, full name
    ("alice", "developer", ["payments"], [], "Alice Nakamura"),
    ("dave", "developer", ["search"], [], "Dave Okafor"),
    ("bob", "platform_engineer", ["platform"], [], "Bob Lindqvist"),
    ("frank", "platform_engineer", ["platform"], [], "Frank Moreau"),
    ("carol", "manager", [], ["payments", "search"], "Carol Iyer"),
    ("erin", "auditor", [], [], "Erin Walsh"),
    ("admin", "admin", ["platform"], [], "Portal Admin"),
]

TEAMS = [
    ("platform", "Platform", "Runs the golden paths, the AI-tool catalog and the portal."),
    ("payments", "Payments", "Card processing, payouts and ledgers."),
    ("search", "Search", "Indexing, ranking and the query service."),
]

# The real agent CLIs, pinned to the newest releases on the registries, launched headless and pointed at
# Goldpath's model gateway (the sandbox's proxy port; `{gateway}` in an argv). Their API-key variables are filled
# with the run's gateway credential by the worker (catalog.agents.launch), never with a vendor key. Their own
# state stays in the sandbox's /tmp (HOME), never in the workspace. Flags as measured in MACHINE-NOTES.md.
CLAUDE_CODE = {
    "version": "2.1.332",
    "runtime": {"kind": "npm", "package": "@anthropic-ai/claude-code", "version": "2.1.332"},
    "launch_command": [
        "claude",
        "-p",
        "--model",
        "{model}",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "bypassPermissions",
        "--disallowedTools",
        "WebSearch",  # a vendor-side tool: the gateway refuses it (the vendor would reach the network for the run)
        "--",  # the prompt is never read as an option
        "{prompt}",
    ],
    # bypassPermissions (its shell tool without prompts) needs IS_SANDBOX=1 when the uid is 0, as in our sandbox;
    # side tasks use the pinned model, so `models` is every model it may call
    "env": {
        "IS_SANDBOX": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "{model}",
        "ANTHROPIC_SMALL_FAST_MODEL": "{model}",
    },
    "model_names": ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"],
    "usage_format": "claude-stream-json",
}
CODEX_CLI = {
    "version": "0.171.0",
    "runtime": {"kind": "npm", "package": "@openai/codex", "version": "0.171.0"},
    "launch_command": [
        "codex",
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "-c",
        'openai_base_url="{gateway}/v1"',
        "-c",
        "analytics.enabled=false",
        "-c",
        "features.plugins=false",
        "-m",
        "{model}",
        "--",
        "{prompt}",
    ],
    "env": {},
    "model_names": ["gpt-5.5", "gpt-5-codex", "gpt-5"],
    "usage_format": "codex-json",
}
AIDER = {
    "version": "0.86.2",
    "runtime": {"kind": "pypi", "package": "aider-chat", "version": "0.86.2"},
    "launch_command": [
        "aider",
        "--model",
        "openai/{model}",
        "--weak-model",
        "openai/{model}",
        "--openai-api-base",
        "{gateway}/v1",
        "--yes-always",
        "--no-auto-commits",
        "--no-check-update",
        "--analytics-disable",
        "--no-pretty",
        "--no-fancy-input",
        "--no-stream",
        "--edit-format",
        "whole",
        "--no-show-model-warnings",
        "--no-show-release-notes",
        "--no-gitignore",
        "--map-tokens",
        "0",
        "--no-detect-urls",
        "--no-restore-chat-history",
        "--no-suggest-shell-commands",
        "--no-auto-lint",
        "--no-watch-files",
        "--input-history-file",
        "/tmp/aider-input.history",
        "--chat-history-file",
        "/tmp/aider-chat.history.md",
        "--message={prompt}",
    ],
    "env": {},
    "model_names": ["gpt-4.1", "gpt-4.1-mini"],
    "usage_format": "aider-text",
}
REAL_AGENTS = {"claude-code": CLAUDE_CODE, "codex-cli": CODEX_CLI, "aider": AIDER}

# status the seed brings each tool to; proposer; approvers (two for high risk)
TOOLS = [
    {
        "data": {
            "slug": "claude-code",
            "name": "Claude Code",
            "vendor": "Anthropic",
            "kind": "agent",
            "risk_tier": "high",
            "max_data_classification": "confidential",
            "homepage": "https://www.anthropic.com/claude-code",
            "description": "Anthropic's agentic coding tool for the terminal: reads the repository, edits files, "
            "runs commands and tests. Runs headless with `claude -p`.",
            "data_location": "vendor_cloud",
            "pricing_note": "Claude Team/Enterprise premium seat, or Anthropic API usage billed per token.",
            "monthly_price_per_seat": Decimal("150.00"),
        },
        "status": "approved",
        "proposer": "admin",
        "approvers": ["bob", "frank"],
        "versions": [CLAUDE_CODE],
    },
    {
        "data": {
            "slug": "codex-cli",
            "name": "OpenAI Codex CLI",
            "vendor": "OpenAI",
            "kind": "agent",
            "risk_tier": "high",
            "max_data_classification": "internal",
            "homepage": "https://github.com/openai/codex",
            "description": "OpenAI's open-source coding agent that runs locally in the terminal; `codex exec` runs it "
            "non-interactively.",
            "data_location": "vendor_cloud",
            "pricing_note": "Included with ChatGPT Plus, Pro, Business and Enterprise plans, or API usage.",
            "monthly_price_per_seat": Decimal("30.00"),
        },
        "status": "approved",
        "proposer": "admin",
        "approvers": ["frank", "bob"],
        "versions": [CODEX_CLI],
    },
    {
        "data": {
            "slug": "aider",
            "name": "Aider",
            "vendor": "Aider (open source)",
            "kind": "cli",
            "risk_tier": "medium",
            "max_data_classification": "confidential",
            "homepage": "https://aider.chat",
            "description": "Open-source AI pair programming in the terminal; works with many LLM providers and commits "
            "its changes to git.",
            "data_location": "local",
            "pricing_note": "Free (Apache-2.0); pay for the model API it is pointed at.",
        },
        "status": "approved",
        "proposer": "admin",
        "approvers": ["bob"],
        "versions": [AIDER],
    },
    {
        "data": {
            "slug": "github-copilot",
            "name": "GitHub Copilot",
            "vendor": "GitHub",
            "kind": "assistant",
            "risk_tier": "medium",
            "max_data_classification": "internal",
            "homepage": "https://github.com/features/copilot",
            "description": "Code completion, chat and a coding agent in the IDE and on GitHub.",
            "data_location": "vendor_cloud",
            "pricing_note": "Copilot Business, per user per month.",
            "monthly_price_per_seat": Decimal("19.00"),
        },
        "status": "approved",
        "proposer": "admin",
        "approvers": ["frank"],
        "versions": [],
    },
    {
        "data": {
            "slug": "continue",
            "name": "Continue",
            "vendor": "Continue",
            "kind": "assistant",
            "risk_tier": "low",
            "max_data_classification": "confidential",
            "homepage": "https://www.continue.dev",
            "description": "Open-source assistant for VS Code and JetBrains that can use self-hosted models.",
            "data_location": "self_hosted",
            "pricing_note": "Open source (Apache-2.0); team plans available.",
        },
        "status": "approved",
        "proposer": "admin",
        "approvers": ["bob"],
        "versions": [],
    },
    {
        "data": {
            "slug": "cursor",
            "name": "Cursor",
            "vendor": "Anysphere",
            "kind": "ide",
            "risk_tier": "medium",
            "max_data_classification": "internal",
            "homepage": "https://cursor.com",
            "description": "AI code editor (a VS Code fork) with chat, agent mode and tab completion.",
            "data_location": "vendor_cloud",
            "pricing_note": "Teams plan, per user per month.",
            "monthly_price_per_seat": Decimal("40.00"),
        },
        "status": "in_review",
        "proposer": "alice",
        "approvers": [],
        "versions": [],
    },
    {
        "data": {
            "slug": "gemini-cli",
            "name": "Gemini CLI",
            "vendor": "Google",
            "kind": "cli",
            "risk_tier": "high",
            "max_data_classification": "internal",
            "homepage": "https://github.com/google-gemini/gemini-cli",
            "description": "Google's open-source AI agent for the terminal; `gemini -p` runs it non-interactively.",
            "data_location": "vendor_cloud",
            "pricing_note": "Free tier with a Google account; Gemini Code Assist Standard/Enterprise licences.",
            "monthly_price_per_seat": Decimal("19.00"),
        },
        "status": "proposed",
        "proposer": "dave",
        "approvers": [],
        "versions": [
            {"version": "0.9.0", "launch_command": ["gemini", "-p", "{prompt}"], "model_names": ["gemini-2.5-pro"]}
        ],
    },
    {
        "data": {
            "slug": "demo-agent",
            "name": "Demo agent (offline demo)",
            "vendor": "Goldpath",
            "kind": "agent",
            "risk_tier": "low",
            "max_data_classification": "confidential",
            "homepage": "",
            "description": "An offline demo agent shipped with Goldpath: it calls no model and needs no network. It "
            "edits files deterministically from the prompt and its run index (so parallel runs differ); put [fail], "
            "[hang] or [network] in the prompt to see a failure, a time-out or a blocked network attempt. It runs "
            "through exactly the same sandbox as a real agent.",
            "data_location": "local",
            "pricing_note": "Free; part of Goldpath.",
        },
        "status": "approved",
        "proposer": "admin",
        "approvers": ["bob"],
        # `python3` is mapped by the sandbox runner to the worker's Python runtime (the demo agent is stdlib only)
        "versions": [
            {
                "version": "1.0.0",
                "launch_command": ["python3", "-m", "catalog.demo_agent", "--index", "{index}", "--prompt={prompt}"],
                "model_names": [],
            },
        ],
    },
]

# team -> tools it holds a grant for (granted by a platform engineer); github-copilot and continue stay
# ungranted so the request-access flow can be shown.
GRANTS = [
    # team, tool, granted by, max data classification ("" = the tool's), seats
    ("payments", "claude-code", "bob", "", 8),
    ("payments", "aider", "bob", "", None),
    ("search", "codex-cli", "frank", "", 5),
    ("payments", "demo-agent", "bob", "", None),
    ("search", "demo-agent", "frank", "", None),
]


# the registered demo repository: a small git repository seed_demo creates under GOLDPATH_HOME/repositories
REPOSITORY = {
    "slug": "demo",
    "name": "Demo service",
    "teams": ["payments", "search"],
    "data_classification": "internal",
    "default_branch": "main",
    "registered_by": "bob",
}
REPOSITORY_FILES = {
    "README.md": "# Demo service\n\nA tiny service Goldpath's demo agents work on. Run it with `python3 app.py`.\n",
    "app.py": (
        '"""Demo service: greets whoever asks."""\n\n\n'
        "def greet(name: str) -> str:\n"
        '    return f"Hello, {name}!"\n\n\n'
        'if __name__ == "__main__":\n'
        '    print(greet("world"))\n'
    ),
}
_DEMO_IDENTITY = {"NAME": "Goldpath demo", "EMAIL": "demo@goldpath.invalid", "DATE": "2025-01-01T00:00:00Z"}


def ensure_demo_repository(home: str | os.PathLike) -> Path:
    """Create `home/repositories/demo` (one commit on main by "Goldpath demo") unless it exists; 0700/0600.

    git runs with no system or global config, so the operator's hooks or templates never apply; it is built
    in a temporary folder and renamed into place, so a half-made repository is never left behind."""
    root = Path(home) / "repositories"
    target = root / REPOSITORY["slug"]
    if (target / ".git").is_dir():
        return target
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        **{f"GIT_{who}_{key}": value for who in ("AUTHOR", "COMMITTER") for key, value in _DEMO_IDENTITY.items()},
    }
    work = Path(tempfile.mkdtemp(prefix=".demo-", dir=root))

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True, timeout=60)

    try:
        git("init", "-q", "--shared=0600", "--template=", "-b", REPOSITORY["default_branch"], ".")
        for name, text in REPOSITORY_FILES.items():
            fd = os.open(work / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        git("add", "--", *REPOSITORY_FILES)
        git("commit", "-q", "--no-verify", "-m", "Demo service: README and app")
        try:
            os.rename(work, target)
        except OSError as exc:
            if not (target / ".git").is_dir():  # not another seed that won the race: something else is there
                raise RuntimeError(
                    f"{target} exists and is not a git repository; move it away and seed again."
                ) from exc
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target
