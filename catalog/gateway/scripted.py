"""The scripted model: a deterministic stand-in for a vendor model, in the vendors' own wire shapes.

It serves two things: the offline demo model (upstream ``demo``, answered in-process by the gateway) and
the local model server process the tests point the gateway's upstreams at (``tests/model_server.py``).
Both must make the real agent CLIs (Claude Code, Codex CLI, Aider) write ``GOLDPATH_DEMO.md`` and stop,
so every answer is read off the conversation in the request (no server state): the number of tool calls
already made says which step comes next. Requests without the CLI's tools (title generation, quota
checks, commit messages, summaries) get a short text answer and never a tool call.

Standard library only: the gateway imports it and the test server runs it without Django.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import scripted_conversation as conv
from .scripted_conversation import DEMO_FILE, demo_markdown

PROTOCOLS = ("anthropic-messages", "openai-responses", "openai-chat")
_CREATED = 1_767_225_600  # a fixed timestamp (2026-01-01) keeps answers byte-for-byte deterministic


@dataclass
class Scripted:
    status: int
    content_type: str
    chunks: list[bytes]
    model: str
    usage: dict = field(default_factory=dict)


# -- framing -----------------------------------------------------------------------------------------


def _json(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _event(kind: str, **fields) -> bytes:
    """One SSE event named like its ``type`` (the Anthropic and Responses style)."""
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), _json({"type": kind, **fields}))


def _tool_use(call_id: str, name: str, tool_input: dict) -> dict:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


# -- Anthropic Messages ------------------------------------------------------------------------------


def _anthropic_step(body: dict, label: str) -> tuple[list[dict], str]:
    """The content blocks and stop reason of the next assistant turn."""
    messages = [m for m in conv.as_list(body.get("messages")) if isinstance(m, dict)]
    tools = conv.tool_names(body)
    max_tokens = body.get("max_tokens")
    if not ({"Bash", "Write"} & tools) or (isinstance(max_tokens, int) and max_tokens <= 1):
        return [{"type": "text", "text": conv.side_text(label)}], "end_turn"  # a side task (title, quota check, ...)
    users = [m for m in messages if m.get("role") == "user"]
    prompt_texts = conv.user_texts(users[0].get("content")) if users else []
    prompt = prompt_texts[-1] if prompt_texts else ""
    done = sum(
        1
        for m in messages
        if m.get("role") == "assistant"
        and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in conv.as_list(m.get("content")))
    )
    plan = conv.plan(prompt)
    step = plan[min(done, len(plan) - 1)]
    call_id = "toolu_demo" + conv.digest(prompt, str(done))[:16]
    if step == "final":
        return [{"type": "text", "text": conv.final_text(label)}], "end_turn"
    if step == "env" and "Bash" in tools:
        block = _tool_use(call_id, "Bash", {"command": "env", "description": "Show the environment"})
        return [{"type": "text", "text": "Let me look at the environment first."}, block], "tool_use"
    cwd = conv.cwd_of(conv.text_of(body.get("system"))) or conv.cwd_of(
        conv.text_of(users[0].get("content")) if users else ""
    )
    if "Write" in tools and cwd:
        path = cwd.rstrip("/") + "/" + DEMO_FILE
        block = _tool_use(call_id, "Write", {"file_path": path, "content": demo_markdown(prompt, label)})
    else:
        block = _tool_use(
            call_id, "Bash", {"command": conv.shell_write(prompt, label), "description": f"Write {DEMO_FILE}"}
        )
    return [{"type": "text", "text": f"I will write {DEMO_FILE}."}, block], "tool_use"


def _anthropic(body: dict, label: str) -> Scripted:
    model = conv.model_of(body)
    blocks, stop = _anthropic_step(body, label)
    input_tokens = conv.tokens(json.dumps([body.get("system"), body.get("messages"), body.get("tools")]))
    output_tokens = conv.tokens(json.dumps(blocks))
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    full_usage = dict(usage, cache_creation_input_tokens=0, cache_read_input_tokens=0)
    message = {
        "id": "msg_demo" + conv.digest(json.dumps(body.get("messages"), sort_keys=True), model),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": dict(full_usage, service_tier="standard"),
    }
    if not body.get("stream"):
        return Scripted(200, "application/json", [_json(message)], model, usage)
    start = dict(message, content=[], stop_reason=None, usage=dict(message["usage"], output_tokens=1))
    chunks = [_event("message_start", message=start)]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            chunks.append(_event("content_block_start", index=index, content_block={"type": "text", "text": ""}))
            if index == 0:
                chunks.append(_event("ping"))
            delta = {"type": "text_delta", "text": block["text"]}
            chunks.append(_event("content_block_delta", index=index, delta=delta))
        else:
            chunks.append(_event("content_block_start", index=index, content_block=dict(block, input={})))
            args = json.dumps(block["input"])
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                chunks.append(_event("content_block_delta", index=index, delta=delta))
        chunks.append(_event("content_block_stop", index=index))
    stop_delta = {"stop_reason": stop, "stop_sequence": None}
    chunks.append(_event("message_delta", delta=stop_delta, usage=full_usage))
    chunks.append(_event("message_stop"))
    return Scripted(200, "text/event-stream", chunks, model, usage)


# -- OpenAI Responses ---------------------------------------------------------------------------------


def _responses_items(body: dict, label: str) -> list[dict]:
    """The output items of the next turn (a message, or a message and a shell call)."""
    items = body.get("input")
    items = [{"type": "message", "role": "user", "content": items}] if isinstance(items, str) else conv.as_list(items)
    items = [i for i in items if isinstance(i, dict)]
    tools = conv.tool_names(body)
    shell = next((n for n in ("exec_command", "shell", "shell_command", "local_shell") if n in tools), None)
    if shell is None:
        return [_responses_message(conv.side_text(label), "side")]  # a side task: no shell tool offered
    users = [i for i in items if i.get("role") == "user" and i.get("type", "message") == "message"]
    prompts = [t for u in users for t in conv.user_texts(u.get("content"))]
    prompt = prompts[-1] if prompts else ""
    done = sum(1 for i in items if i.get("type") in ("function_call", "local_shell_call", "custom_tool_call"))
    plan = conv.plan(prompt)
    step = plan[min(done, len(plan) - 1)]
    if step == "final":
        return [_responses_message(conv.final_text(label), conv.digest(prompt, "final"))]
    command = "env" if step == "env" else conv.shell_write(prompt, label)
    call_id = "call_demo" + conv.digest(prompt, str(done))[:16]
    item_id = "fc_demo" + conv.digest(prompt, str(done), "item")
    if shell == "local_shell":
        action = {"type": "exec", "command": ["bash", "-lc", command], "env": {}}
        call = {"type": "local_shell_call", "id": item_id, "call_id": call_id, "status": "completed", "action": action}
    else:
        argv = ["bash", "-lc", command]
        args = {"exec_command": {"cmd": command}, "shell": {"command": argv}}.get(shell, {"command": command})
        call = {"type": "function_call", "id": item_id, "call_id": call_id, "name": shell, "status": "completed"}
        call["arguments"] = json.dumps(args)
    note = "Let me look at the environment first." if step == "env" else f"I will write {DEMO_FILE}."
    return [_responses_message(note, conv.digest(prompt, str(done), "msg")), call]


def _responses_message(text: str, seed: str) -> dict:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return {
        "type": "message",
        "id": "msg_demo" + conv.digest(seed),
        "status": "completed",
        "role": "assistant",
        "content": content,
    }


def _responses(body: dict, label: str) -> Scripted:
    model = conv.model_of(body)
    output = _responses_items(body, label)
    input_tokens = conv.tokens(json.dumps([body.get("instructions"), body.get("input"), body.get("tools")]))
    output_tokens = conv.tokens(json.dumps(output))
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    response = {
        "id": "resp_demo" + conv.digest(json.dumps(body.get("input"), sort_keys=True), model),
        "object": "response",
        "created_at": _CREATED,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", False)),
        "tool_choice": "auto",
        "usage": dict(
            usage,
            input_tokens_details={"cached_tokens": 0},
            output_tokens_details={"reasoning_tokens": 0},
            total_tokens=input_tokens + output_tokens,
        ),
    }
    if not body.get("stream"):
        return Scripted(200, "application/json", [_json(response)], model, usage)
    seq = iter(range(1_000_000))
    chunks = []

    def emit(kind: str, **fields) -> None:
        chunks.append(_event(kind, sequence_number=next(seq), **fields))

    pending = dict(response, status="in_progress", output=[], usage=None)
    emit("response.created", response=pending)
    emit("response.in_progress", response=pending)
    for index, item in enumerate(output):
        at = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": []}
            emit("response.output_item.added", output_index=index, item=dict(item, status="in_progress", content=[]))
            emit("response.content_part.added", **at, content_index=0, part=part)
            emit("response.output_text.delta", **at, content_index=0, delta=text)
            emit("response.output_text.done", **at, content_index=0, text=text)
            emit("response.content_part.done", **at, content_index=0, part=dict(part, text=text))
        elif item["type"] == "function_call":
            emit("response.output_item.added", output_index=index, item=dict(item, status="in_progress", arguments=""))
            emit("response.function_call_arguments.delta", **at, delta=item["arguments"])
            emit("response.function_call_arguments.done", **at, arguments=item["arguments"])
        else:
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response)
    return Scripted(200, "text/event-stream", chunks, model, usage)


# -- OpenAI Chat Completions ----------------------------------------------------------------------------


def _chat_text(body: dict, label: str) -> str:
    """Aider's main conversation gets a new-file edit in its edit format; every other chat request a short text."""
    messages = [m for m in conv.as_list(body.get("messages")) if isinstance(m, dict)]
    system = "\n".join(conv.text_of(m.get("content")) for m in messages if m.get("role") == "system")
    users = [m for m in messages if m.get("role") == "user"]
    whole = "*file listing*" in system
    search_replace = "SEARCH/REPLACE" in system
    if body.get("tools") or not (whole or search_replace) or not users:
        return conv.side_text(label)  # commit messages, summaries, anything not an edit request
    if any(m.get("role") == "assistant" and DEMO_FILE in conv.text_of(m.get("content")) for m in messages):
        return conv.final_text(label)
    content = demo_markdown(conv.text_of(users[-1].get("content")), label)
    if whole:
        return f"I will create {DEMO_FILE}.\n\n{DEMO_FILE}\n```\n{content}```\n"
    return f"I will create {DEMO_FILE}.\n\n{DEMO_FILE}\n```\n<<<<<<< SEARCH\n=======\n{content}>>>>>>> REPLACE\n```\n"


def _chat(body: dict, label: str) -> Scripted:
    model = conv.model_of(body)
    text = _chat_text(body, label)
    input_tokens = conv.tokens(json.dumps([body.get("messages"), body.get("tools")]))
    output_tokens = conv.tokens(text)
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    totals = {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    chat_id = "chatcmpl-demo" + conv.digest(json.dumps(body.get("messages"), sort_keys=True), model)
    base = {"id": chat_id, "created": _CREATED, "model": model, "system_fingerprint": "fp_goldpath_demo"}
    if not body.get("stream"):
        message = {"role": "assistant", "content": text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        answer = dict(base, object="chat.completion", choices=[choice], usage=totals)
        return Scripted(200, "application/json", [_json(answer)], model, usage)

    def chunk(choices: list, **extra) -> bytes:
        return b"data: %s\n\n" % _json(dict(base, object="chat.completion.chunk", choices=choices, **extra))

    def choice(delta: dict, finish: str | None = None) -> list:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    chunks = [chunk(choice({"role": "assistant", "content": ""}))]
    chunks += [chunk(choice({"content": text[i : i + 64]})) for i in range(0, len(text), 64)]
    chunks += [chunk(choice({}, "stop")), chunk([], usage=totals), b"data: [DONE]\n\n"]
    return Scripted(200, "text/event-stream", chunks, model, usage)


# -- entry points -----------------------------------------------------------------------------------


def respond(protocol: str, body: dict, *, label: str = "Goldpath demo model (offline)") -> Scripted:
    """The scripted answer to one request body of the given wire protocol (one of PROTOCOLS)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    body = body if isinstance(body, dict) else {}
    if protocol == "anthropic-messages":
        return _anthropic(body, label)
    if protocol == "openai-responses":
        return _responses(body, label)
    return _chat(body, label)


def models_list(flavor: str, ids: list[str]) -> dict:
    """A /v1/models body listing ``ids`` as Anthropic ("anthropic") or OpenAI ("openai") sends it."""
    if flavor == "anthropic":
        data = [{"type": "model", "id": i, "display_name": i, "created_at": "2026-01-01T00:00:00Z"} for i in ids]
        return {
            "data": data,
            "has_more": False,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }
    if flavor == "openai":
        return {
            "object": "list",
            "data": [{"id": i, "object": "model", "created": _CREATED, "owned_by": "goldpath"} for i in ids],
        }
    raise ValueError(f"unknown flavor {flavor!r}")
