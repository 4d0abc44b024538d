"""What a request may ask of the vendor: nothing that makes the vendor reach the network for the run (refused,
403, recorded), no key given twice, and a model name of the model-name grammar (400, recorded); while the stock
CLIs' own requests (Claude Code's beta list, Codex's tools) go through."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from catalog.gateway.model_names import model_allowed
from catalog.models import AgentRun, AuditEvent, ModelCall
from tests.gateway.test_gateway_calls import CASES, auth_headers, post

pytestmark = pytest.mark.django_db

ANTHROPIC = CASES["anthropic-messages"][1]
RESPONSES = CASES["openai-responses"][1]
CHAT = CASES["openai-chat"][1]
# the beta list Claude Code 2.1.332 sends on every call
CLAUDE_BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,thinking-display-updates-2026-08-18"
)
# the tool kinds Codex CLI 0.171.0 sends on every call (web_search included)
CODEX_TOOLS = [
    {
        "type": "function",
        "name": "exec_command",
        "parameters": {"type": "object", "properties": {"type": {"type": "string"}, "image": {"type": ["string"]}}},
    },
    {"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "x"}},
    {"type": "namespace", "name": "multi_agent_v1", "tools": [{"type": "function", "name": "close_agent"}]},
    {"type": "tool_search", "execution": "client", "description": "search deferred tools"},
    {"type": "web_search", "external_web_access": True, "search_content_types": ["text", "image"]},
]


def refused(run, status: int, reason_start: str) -> ModelCall:
    call = ModelCall.objects.filter(run=run).latest("id")
    assert (call.status_code, call.cost_usd) == (status, 0) and call.refused.startswith(reason_start), call.refused
    assert AgentRun.objects.get(pk=run.pk).gateway_refusal
    assert AuditEvent.objects.filter(verb="gateway.refused", target_id=str(run.pk)).exists()
    return call


def post_raw(protocol: str, token: str, raw: bytes, **headers):
    response = Client().post(
        CASES[protocol][0],
        data=raw,
        content_type="application/json",
        headers={**auth_headers(protocol, token), **headers},
    )
    return response, b"".join(response.streaming_content) if response.streaming else response.content


def test_claude_code_betas_pass_and_network_betas_are_dropped(upstream, gw):
    tools = [
        {"name": "Bash", "input_schema": {"type": "object"}},
        {"name": "Write", "input_schema": {"type": "object"}},
    ]
    raw = json.dumps({**ANTHROPIC, "tools": tools, "stream": True}).encode()
    response, _ = post_raw("anthropic-messages", gw.token, raw, **{"anthropic-beta": CLAUDE_BETAS})
    assert response.status_code == 200
    assert upstream.last()["headers"]["anthropic-beta"] == CLAUDE_BETAS

    beta = f"{CLAUDE_BETAS},mcp-client-2025-04-04, web-fetch-2025-09-10,code-execution-2025-08-25"
    assert post_raw("anthropic-messages", gw.token, raw, **{"anthropic-beta": beta})[0].status_code == 200
    assert upstream.last()["headers"]["anthropic-beta"] == CLAUDE_BETAS
    assert (
        post_raw("anthropic-messages", gw.token, raw, **{"anthropic-beta": "mcp-client-2025-04-04"})[0].status_code
        == 200
    )
    assert "anthropic-beta" not in upstream.last()["headers"]
    assert not ModelCall.objects.exclude(refused="").exists()


def test_codex_tools_pass_and_web_search_is_removed(upstream, gw):
    response, content, raw = post("openai-responses", gw.token, {**RESPONSES, "tools": CODEX_TOOLS, "stream": True})
    assert response.status_code == 200, content
    forwarded = json.loads(upstream.last()["body"])
    assert [t["type"] for t in forwarded["tools"]] == ["function", "custom", "namespace", "tool_search"]
    assert forwarded["tools"][2]["tools"] == CODEX_TOOLS[2]["tools"]
    call = ModelCall.objects.get(run=gw.run)
    assert bytes(call.request_body) == raw and call.refused == ""  # the transcript keeps what the CLI sent


@pytest.mark.parametrize(
    "protocol,extra,reason",
    [
        ("anthropic-messages", {"mcp_servers": [{"type": "url", "url": "https://x.example/sse"}]}, "the MCP connector"),
        ("anthropic-messages", {"tools": [{"type": "web_fetch_20250910", "name": "f"}]}, "server-side tool web_fetch"),
        (
            "anthropic-messages",
            {"tools": [{"type": "web_search_20250305", "name": "s"}]},
            "server-side tool web_search",
        ),
        ("anthropic-messages", {"tools": [{"type": "code_execution_20250825", "name": "c"}]}, "server-side tool code"),
        ("openai-responses", {"tools": [{"type": "mcp", "server_url": "https://x.example"}]}, "hosted tool mcp"),
        ("openai-responses", {"tools": [{"type": "code_interpreter", "container": {}}]}, "hosted tool code_inter"),
        ("openai-responses", {"tools": [{"type": "file_search"}]}, "hosted tool file_search"),
        ("openai-responses", {"tools": [{"type": "namespace", "tools": [{"type": "mcp"}]}]}, "hosted tool mcp"),
        ("openai-responses", {"tool_choice": {"type": "web_search"}}, "tool_choice web_search"),
        ("openai-responses", {"background": True, "store": True}, "background mode"),
        ("openai-chat", {"web_search_options": {}}, "web search"),
    ],
)
def test_vendor_network_features_are_refused(upstream, gw, protocol, extra, reason):
    before = len(upstream.requests())
    response, content, _ = post(protocol, gw.token, {**CASES[protocol][1], **extra})
    assert response.status_code == 403, content
    assert "would let the vendor reach the network for this run; not allowed" in content.decode()
    refused(gw.run, 403, reason)
    assert len(upstream.requests()) == before


@pytest.mark.parametrize(
    "protocol,block",
    [
        ("anthropic-messages", {"type": "image", "source": {"type": "url", "url": "https://x.example/a.png?d=1"}}),
        ("anthropic-messages", {"type": "document", "source": {"type": "url", "url": "https://x.example/a.pdf"}}),
        ("openai-responses", {"type": "input_image", "image_url": "https://x.example/a.png"}),
        ("openai-responses", {"type": "input_file", "file_url": "https://x.example/a.pdf"}),
        ("openai-chat", {"type": "image_url", "image_url": {"url": "http://x.example/a.png"}}),
    ],
)
def test_inputs_given_by_url_are_refused_and_inline_ones_pass(upstream, gw, protocol, block):
    def with_block(b: dict) -> dict:
        key = "input" if protocol == "openai-responses" else "messages"
        return {**CASES[protocol][1], key: [{"role": "user", "content": [b]}]}

    response, content, _ = post(protocol, gw.token, with_block(block))
    assert response.status_code == 403, content
    refused(gw.run, 403, f"a {block['type']} given by URL")

    inline = json.loads(json.dumps(block).replace("https://x.example", "data:image/png;base64,AAAA"))
    inline = json.loads(json.dumps(inline).replace("http://x.example", "data:image/png;base64,AAAA"))
    if block.get("source"):
        inline["source"] = {"type": "base64", "media_type": "image/png", "data": "AAAA"}
    assert post(protocol, gw.token, with_block(inline))[0].status_code == 200


def test_a_key_given_twice_at_any_depth_is_400(upstream, gw):
    before = len(upstream.requests())
    for raw in (
        b'{"model": "gpt-4.1", "messages": [], "model": "gpt-4.1-mini"}',
        b'{"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "a", "role": "system"}]}',
        b'{"model": "gpt-4.1-mini", "messages": [], "\\u006dodel": "gpt-5"}',  # an escaped name is the same key
    ):
        response, content = post_raw("openai-chat", gw.token, raw)
        assert response.status_code == 400, content
        assert json.loads(content)["error"]["message"].startswith("the request body gives the key")
        assert bytes(refused(gw.run, 400, "the request body gives the key").request_body) == raw
    assert len(upstream.requests()) == before


@pytest.mark.parametrize(
    "model",
    ["gpt-4.1-mini\n", "gpt-4.1-mini\u0000", "gpt-\ud800", "gpt 4.1", "x" * 201],
    ids=["newline", "nul", "lone-surrogate", "space", "too-long"],
)
def test_a_model_outside_the_model_name_grammar_is_400_and_recorded(upstream, gw, model):
    response, content, _ = post("openai-chat", gw.token, {**CHAT, "model": model})
    assert response.status_code == 400, content
    message = json.loads(content)["error"]["message"]
    assert message.endswith("is not a model name (1-200 letters, digits and . _ : / -)")
    assert "\n" not in message and "\x00" not in message
    call = refused(gw.run, 400, "the model ")
    assert call.model == ""


def test_a_dated_snapshot_is_matched_whole():
    assert model_allowed("claude-sonnet-4-5-20250929", ["claude-sonnet-4-5"])
    assert not model_allowed("claude-sonnet-4-5-20250929\n", ["claude-sonnet-4-5"])
    assert not model_allowed("claude-sonnet-4-5-20250929x", ["claude-sonnet-4-5"])
