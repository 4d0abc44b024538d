"""The local model server process: each vendor protocol, streamed and not, its script, and its request log."""

from __future__ import annotations

import http.client
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.gateway.scripted import PROTOCOLS, respond

ROOT = Path(__file__).resolve().parent.parent
LABEL = "Test model server"

CLAUDE_SYSTEM = [
    {"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK."},
    {"type": "text", "text": "Use the instructions below and the tools available to you."},
]
CLAUDE_TOOLS = [
    {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}},
    {"name": "Write", "description": "Write a file", "input_schema": {"type": "object"}},
]
CODEX_TOOLS = [
    {
        "type": "function",
        "name": "exec_command",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
    },
    {"type": "function", "name": "apply_patch", "parameters": {"type": "object"}},
]
AIDER_SYSTEM = "Act as an expert software developer.\nYou MUST use this *file listing* format:\n\npath/to/filename.js\n```\n...\n```\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("model-server") / "requests.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.model_server",
            "--port",
            "0",
            "--log",
            str(log),
            "--label",
            LABEL,
            "--models",
            "demo,other",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline().split()
        assert first[0] == "PORT", first
        yield int(first[1]), log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp, payload


def sse(payload: bytes) -> list[tuple[str | None, object]]:
    events = []
    for frame in payload.decode().split("\n\n"):
        if not frame.strip():
            continue
        name = None
        data = None
        for line in frame.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:] if line[6:] == "[DONE]" else json.loads(line[6:])
        events.append((name, data))
    return events


def claude_body(messages, *, stream=True, tools=CLAUDE_TOOLS, **extra):
    return {
        "model": "claude-test",
        "max_tokens": 32000,
        "system": CLAUDE_SYSTEM,
        "tools": tools,
        "messages": messages,
        "stream": stream,
        **extra,
    }


def first_user(prompt):
    reminder = "<system-reminder>\n# Environment\n - Primary working directory: /work/repo\n</system-reminder>"
    return {"role": "user", "content": [{"type": "text", "text": reminder}, {"type": "text", "text": prompt}]}


def claude_turn(port, messages):
    resp, payload = call(port, "POST", "/v1/messages?beta=true", claude_body(messages))
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    events = sse(payload)
    blocks, current = [], None
    for name, data in events:
        if name == "content_block_start":
            current = dict(data["content_block"])
            current["_json"] = ""
            blocks.append(current)
        elif name == "content_block_delta" and data["delta"]["type"] == "text_delta":
            current["text"] += data["delta"]["text"]
        elif name == "content_block_delta":
            current["_json"] += data["delta"]["partial_json"]
    for block in blocks:
        if block["type"] == "tool_use":
            block["input"] = json.loads(block["_json"])
        block.pop("_json")
    return events, blocks


def test_anthropic_stream_writes_the_file_then_stops(server):
    port, _ = server
    messages = [first_user("Write a short note about ducks\nmore details")]
    events, blocks = claude_turn(port, messages)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["model"] == "claude-test"
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] > 0
    write = blocks[-1]
    assert write["name"] == "Write" and write["input"]["file_path"] == "/work/repo/GOLDPATH_DEMO.md"
    assert "Write a short note about ducks" in write["input"]["content"] and LABEL in write["input"]["content"]
    assert "more details" not in write["input"]["content"]

    result = {"type": "tool_result", "tool_use_id": write["id"], "content": "File created"}
    messages += [{"role": "assistant", "content": blocks}, {"role": "user", "content": [result]}]
    events, blocks = claude_turn(port, messages)
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert [b["type"] for b in blocks] == ["text"] and "GOLDPATH_DEMO.md" in blocks[0]["text"]


def test_anthropic_env_marker_runs_env_first(server):
    port, _ = server
    messages = [first_user("Show me [env] then write")]
    _, blocks = claude_turn(port, messages)
    assert blocks[-1]["name"] == "Bash" and blocks[-1]["input"]["command"] == "env"
    messages += [
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": blocks[-1]["id"], "content": "HOME=/x"}]},
    ]
    _, blocks = claude_turn(port, messages)
    assert blocks[-1]["name"] == "Write"


def test_anthropic_side_requests_get_text_and_no_tool(server):
    port, _ = server
    for body in (
        claude_body([first_user("Generate a title for this conversation")], tools=[]),
        claude_body([first_user("quota")], max_tokens=1),
    ):
        resp, payload = call(port, "POST", "/v1/messages", body)
        kinds = {data["content_block"]["type"] for name, data in sse(payload) if name == "content_block_start"}
        assert kinds == {"text"}


def test_anthropic_not_streamed_is_one_json_message(server):
    port, _ = server
    resp, payload = call(port, "POST", "/v1/messages", claude_body([first_user("Write it")], stream=False))
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
    message = json.loads(payload)
    assert message["type"] == "message" and message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0
    again = call(port, "POST", "/v1/messages", claude_body([first_user("Write it")], stream=False))[1]
    assert again == payload  # deterministic: same conversation, same bytes


def responses_body(items, *, stream=True, tools=CODEX_TOOLS):
    context = {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "<environment_context>\n  <cwd>/work/repo</cwd>\n</environment_context>"}
        ],
    }
    return {
        "model": "codex-test",
        "instructions": "You are Codex.",
        "input": [context, *items],
        "tools": tools,
        "stream": stream,
    }


def user_item(text):
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_responses_stream_runs_env_writes_then_answers(server):
    port, _ = server
    items = [user_item("Look around [env] and write")]
    for expected in ("env", "printf"):
        resp, payload = call(port, "POST", "/v1/responses", responses_body(items))
        assert resp.getheader("Content-Type") == "text/event-stream"
        events = sse(payload)
        assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
        assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
        completed = events[-1][1]["response"]
        assert completed["usage"]["input_tokens"] > 0 and completed["usage"]["output_tokens"] > 0
        done = [data["item"] for name, data in events if name == "response.output_item.done"]
        call_item = done[-1]
        assert call_item["type"] == "function_call" and call_item["name"] == "exec_command"
        command = json.loads(call_item["arguments"])["cmd"]
        assert (
            command == "env"
            if expected == "env"
            else command.startswith("printf") and command.endswith("> GOLDPATH_DEMO.md")
        )
        items += [call_item, {"type": "function_call_output", "call_id": call_item["call_id"], "output": "ok"}]
    events = sse(call(port, "POST", "/v1/responses", responses_body(items))[1])
    output = events[-1][1]["response"]["output"]
    assert [item["type"] for item in output] == ["message"]


def test_responses_not_streamed_and_side_requests(server):
    port, _ = server
    resp, payload = call(port, "POST", "/v1/responses", responses_body([user_item("Write")], stream=False))
    response = json.loads(payload)
    assert response["object"] == "response" and response["status"] == "completed"
    assert response["output"][-1]["type"] == "function_call"
    side = json.loads(
        call(port, "POST", "/v1/responses", responses_body([user_item("Summarize")], stream=False, tools=[]))[1]
    )
    assert [item["type"] for item in side["output"]] == ["message"]


def chat_body(system, prompt, *, stream=False):
    return {
        "model": "chat-test",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
        "stream": stream,
    }


def test_chat_gives_aider_a_whole_file_listing(server):
    port, _ = server
    resp, payload = call(port, "POST", "/v1/chat/completions", chat_body(AIDER_SYSTEM, "Write about owls"))
    answer = json.loads(payload)
    assert answer["object"] == "chat.completion" and answer["choices"][0]["finish_reason"] == "stop"
    text = answer["choices"][0]["message"]["content"]
    assert "\nGOLDPATH_DEMO.md\n```\n# Goldpath demo\n" in text and "Write about owls" in text
    assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["completion_tokens"] > 0


def test_chat_stream_ends_with_usage_and_done(server):
    port, _ = server
    resp, payload = call(port, "POST", "/v1/chat/completions", chat_body(AIDER_SYSTEM, "Write about owls", stream=True))
    assert resp.getheader("Content-Type") == "text/event-stream" and resp.getheader("Transfer-Encoding") == "chunked"
    events = [data for _, data in sse(payload)]
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["total_tokens"] > 0
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-2] if e["choices"])
    assert "GOLDPATH_DEMO.md\n```" in text


def test_chat_side_task_gets_short_text(server):
    port, _ = server
    commit = "You are an expert software engineer that generates concise, one-line Git commit messages."
    answer = json.loads(call(port, "POST", "/v1/chat/completions", chat_body(commit, "diff --git a b"))[1])
    text = answer["choices"][0]["message"]["content"]
    assert "GOLDPATH_DEMO.md" not in text and LABEL in text


def test_models_lists_and_errors(server):
    port, _ = server
    anthropic = json.loads(call(port, "GET", "/v1/models", headers={"anthropic-version": "2023-06-01"})[1])
    assert [m["id"] for m in anthropic["data"]] == ["demo", "other"] and anthropic["data"][0]["type"] == "model"
    openai = json.loads(call(port, "GET", "/v1/models")[1])
    assert openai["object"] == "list" and [m["id"] for m in openai["data"]] == ["demo", "other"]
    resp, payload = call(port, "GET", "/v1/elsewhere")
    assert resp.status == 404 and "error" in json.loads(payload)
    resp, payload = call(port, "POST", "/v1/messages", b"{not json")
    assert resp.status == 400
    resp, payload = call(port, "GET", "/v1/responses", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert resp.status == 426  # Codex falls back to POST at once on this answer


def test_every_request_is_logged_with_headers_and_body(server):
    port, log = server
    body = chat_body("plain", "log me please")
    call(port, "POST", "/v1/chat/completions", body, headers={"Authorization": "Bearer sk-run-123", "X-Extra": "yes"})
    record = [json.loads(line) for line in log.read_text().splitlines()][-1]
    assert record["method"] == "POST" and record["path"] == "/v1/chat/completions"
    assert record["headers"]["authorization"] == "Bearer sk-run-123" and record["headers"]["x-extra"] == "yes"
    assert json.loads(record["body"]) == body and record["time"] > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": 5, "input": {"a": 1}, "tools": "Bash", "stream": True},
        {"messages": [None, {"role": "user", "content": 7}], "input": [None, {"role": "user"}], "tools": [None, 3]},
        {"model": ["x"], "max_tokens": "1", "system": {"text": 1}, "tools": [{"function": "Bash"}]},
    ],
)
def test_odd_bodies_still_get_a_plain_answer(protocol, body):
    answer = respond(protocol, body)
    assert answer.status == 200 and answer.chunks and answer.model == "demo"
    assert answer.usage["input_tokens"] > 0 and answer.usage["output_tokens"] > 0
    assert b"GOLDPATH_DEMO.md" not in b"".join(answer.chunks)  # no tools offered, so no tool call


def test_a_hostile_prompt_is_quoted_into_the_shell_write():
    prompt = "x'; touch /tmp/pwned; echo '$(id)`id`\nsecond line"
    body = {"input": [user_item(prompt)], "tools": CODEX_TOOLS}
    command = json.loads(json.loads(respond("openai-responses", body).chunks[0])["output"][-1]["arguments"])["cmd"]
    assert shlex.split(command)[:2] == ["printf", "%s"] and shlex.split(command)[3:] == [">", "GOLDPATH_DEMO.md"]
    assert "second line" not in command and "Goldpath demo model (offline)" in command
