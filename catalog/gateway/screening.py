"""Screening an admitted request for what would make the vendor reach the network on the run's behalf.

A run's egress policy binds the sandbox, not the vendor: a request can ask the vendor itself to connect to any
URL (Anthropic's MCP connector `mcp_servers`, the server tools `web_fetch_*`, `web_search_*`, `code_execution_*`,
`mcp_toolset`; OpenAI Responses tools `mcp`, `file_search`, `code_interpreter`, `image_generation`,
`computer_use*`, `background: true`; Chat's `web_search_options`; an image or document given by URL rather than
inline) and hand it the repository. Such requests are refused (403, recorded), naming what was refused.

Two things are removed rather than refused, because the stock CLIs send them on normal requests:
- `anthropic-beta` values enabling those features (mcp-client-*, web-fetch-*, web-search-*, code-execution-*);
  Claude Code sends a long list it needs, so only these values are dropped;
- OpenAI Responses `web_search*` tools: Codex CLI 0.171 sends `{"type": "web_search", "external_web_access":
  true}` on every request; the request goes on without the tool.

Cost: a walk over `tools` only; URL-sourced inputs are found while the body is parsed (`admission._parse`
collects the typed blocks that may carry a URL), so the message history is not walked again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .errors import GatewayError
from .protocols import ANTHROPIC_COUNT_TOKENS, ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES

_ANTHROPIC_SERVER_TOOLS = ("web_fetch_", "web_search_", "code_execution_", "mcp_toolset")
_RESPONSES_REFUSED = ("mcp", "file_search", "code_interpreter", "image_generation", "computer_use")
_RESPONSES_STRIPPED = ("web_search",)
_BETAS_DROPPED = ("mcp-client-", "web-fetch-", "web-search-", "code-execution-")
# typed content blocks that may name a URL for the vendor to fetch (collected while parsing)
URL_BLOCK_TYPES = frozenset({"image", "document", "input_image", "input_file", "image_url"})
_SAFE = re.compile(r"[A-Za-z0-9._:/-]{1,80}")


@dataclass
class Screened:
    payload: dict  # the payload to forward (the request's own unless something was removed)
    changed: bool  # the payload lost a tool: the upstream body must be written anew
    beta: str | None  # the `anthropic-beta` value to forward (None: none)


def shown(value: object) -> str:
    """A client-given name as it may appear in a message, a row or an audit event: as is when it is a plain
    name, else JSON-escaped ASCII (no NUL, control character or lone surrogate reaches the database)."""
    text = value if isinstance(value, str) else repr(value)
    return text if _SAFE.fullmatch(text) else json.dumps(text[:80])


def _refuse(what: str) -> GatewayError:
    return GatewayError(
        403, "vendor_network_access", f"{what} would let the vendor reach the network for this run; not allowed"
    )


def screen(protocol: str, payload: dict, beta: str | None, url_blocks: list[dict]) -> Screened:
    """The request as it may be forwarded, or GatewayError (403)."""
    changed = False
    if protocol in (ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS):
        if payload.get("mcp_servers"):
            raise _refuse("the MCP connector (mcp_servers)")
        for kind in _tool_types(payload.get("tools")):
            if kind.startswith(_ANTHROPIC_SERVER_TOOLS):
                raise _refuse(f"server-side tool {shown(kind)}")
    elif protocol == OPENAI_RESPONSES:
        if payload.get("background") is True:
            raise _refuse("background mode (background: true)")
        tools, changed = _responses_tools(payload.get("tools"))
        if changed:
            payload = {**payload, "tools": tools}
        choice = payload.get("tool_choice")
        if isinstance(choice, dict) and isinstance(choice.get("type"), str):
            if choice["type"].startswith(_RESPONSES_STRIPPED + _RESPONSES_REFUSED):
                raise _refuse(f"tool_choice {shown(choice['type'])}")
    elif protocol == OPENAI_CHAT and payload.get("web_search_options") is not None:
        raise _refuse("web search (web_search_options)")
    for block in url_blocks:
        if _names_url(block):
            raise _refuse(f"a {shown(block.get('type'))} given by URL (send it inline)")
    return Screened(payload=payload, changed=changed, beta=_beta(beta))


def _tool_types(tools: object):
    """The `type` of each tool, nested namespaces included."""
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            kind = tool.get("type")
            if isinstance(kind, str):
                yield kind
            yield from _tool_types(tool.get("tools"))


def _responses_tools(tools: object) -> tuple[object, bool]:
    """Responses tools with web search removed (at any namespace depth); refuses the refused types."""
    if not isinstance(tools, list):
        return tools, False
    kept, changed = [], False
    for tool in tools:
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str):
            if kind.startswith(_RESPONSES_REFUSED):
                raise _refuse(f"hosted tool {shown(kind)}")
            if kind.startswith(_RESPONSES_STRIPPED):
                changed = True
                continue
        if isinstance(tool, dict) and isinstance(tool.get("tools"), list):
            inner, inner_changed = _responses_tools(tool["tools"])
            if inner_changed:
                tool, changed = {**tool, "tools": inner}, True
        kept.append(tool)
    return kept, changed


def _is_url(value: object) -> bool:
    return isinstance(value, str) and not value.lstrip()[:5].lower().startswith("data:")


def _names_url(block: dict) -> bool:
    """An input block the vendor would fetch: Anthropic `source: {type: url}`, Responses `image_url` /
    `file_url` strings, Chat `image_url: {url}` (data: URLs are inline)."""
    kind = block.get("type")
    if kind in ("image", "document"):
        source = block.get("source")
        return isinstance(source, dict) and source.get("type") == "url"
    if kind in ("input_image", "input_file"):
        return _is_url(block.get("image_url")) or _is_url(block.get("file_url"))
    if kind == "image_url":
        image = block.get("image_url")
        return _is_url(image.get("url") if isinstance(image, dict) else image)
    return False


def _beta(value: str | None) -> str | None:
    if not value:
        return value
    kept = [v.strip() for v in value.split(",") if v.strip() and not v.strip().lower().startswith(_BETAS_DROPPED)]
    return ",".join(kept) or None
