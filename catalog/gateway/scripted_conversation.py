"""Read a model request's conversation for the scripted model: texts, tools, model and the script's next step.

Standard library only (catalog.gateway.scripted, which the test model server runs without Django).
"""

from __future__ import annotations

import hashlib
import re
import shlex

DEMO_FILE = "GOLDPATH_DEMO.md"
ENV_MARKER = "[env]"
SIDE_ANSWER = "Goldpath demo"


def as_list(value) -> list:
    return value if isinstance(value, list) else []


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


def text_of(content) -> str:
    """The text of a message content: a string or a list of typed blocks (text/input_text/output_text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "\n".join(parts)
    return ""


def user_texts(content) -> list[str]:
    """The user-typed text blocks of a message, without the CLIs' injected context blocks."""
    blocks = content if isinstance(content, list) else [content]
    texts = []
    for block in blocks:
        text = block if isinstance(block, str) else block.get("text") if isinstance(block, dict) else None
        if not isinstance(text, str) or not text.strip():
            continue
        stripped = text.lstrip()
        if stripped.startswith(("<system-reminder>", "<environment_context>", "<user_instructions>", "# AGENTS.md")):
            continue
        if stripped.startswith("<") and re.match(r"<[a-z_ -]+>", stripped) and stripped.rstrip().endswith(">"):
            continue  # another injected <tag>...</tag> context block
        texts.append(text)
    return texts


def model_of(body: dict) -> str:
    model = body.get("model")
    return model if isinstance(model, str) and model else "demo"


def tool_names(body: dict) -> set[str]:
    names = set()
    for tool in as_list(body.get("tools")):
        if not isinstance(tool, dict):
            continue
        name = tool.get("name")
        if not isinstance(name, str) and isinstance(tool.get("function"), dict):
            name = tool["function"].get("name")
        if isinstance(name, str):
            names.add(name)
        elif tool.get("type") == "local_shell":
            names.add("local_shell")
    return names


def cwd_of(text: str) -> str | None:
    """The working directory the CLI told the model about (Claude's env section, Codex's <cwd>)."""
    for pattern in (r"(?i)working directory:\s*(/[^\n<]*)", r"<cwd>\s*(/[^\n<]*?)\s*</cwd>"):
        match = re.search(pattern, text)
        if match:
            return match.group(1).strip()
    return None


def first_line(prompt: str) -> str:
    for line in prompt.splitlines():
        line = line.strip()
        if line:
            return line[:200]
    return "(empty prompt)"


def demo_markdown(prompt: str, label: str) -> str:
    """The file the script writes: the prompt's first line and which model wrote it."""
    return f"# Goldpath demo\n\nPrompt: {first_line(prompt)}\n\nWritten by: {label}\n"


def shell_write(prompt: str, label: str) -> str:
    return f"printf '%s' {shlex.quote(demo_markdown(prompt, label))} > {DEMO_FILE}"


def digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


def plan(prompt: str) -> list[str]:
    return ["env", "write", "final"] if ENV_MARKER in prompt else ["write", "final"]


def final_text(label: str) -> str:
    return f"Done: wrote {DEMO_FILE}. ({label})"


def side_text(label: str) -> str:
    return f"{SIDE_ANSWER} ({label})"
