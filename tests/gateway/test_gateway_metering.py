"""Reading usage from answers as they stream (events split anywhere across reads) and pricing it."""

from __future__ import annotations

import json
from decimal import Decimal

from catalog.gateway.metering import Meter
from catalog.gateway.pricing import cost_usd, prices_for


def sse(*events: dict, named: bool = True) -> bytes:
    out = b""
    for data in events:
        head = f"event: {data.get('type')}\n".encode() if named else b""
        out += head + b"data: " + json.dumps(data).encode() + b"\n\n"
    return out


def feed_in_pieces(meter: Meter, stream: bytes, size: int) -> bytes:
    out = b"".join(meter.feed(stream[i : i + size]) for i in range(0, len(stream), size))
    return out + meter.flush()


def test_anthropic_stream_split_anywhere_is_passed_on_whole_and_metered():
    stream = sse(
        {
            "type": "message_start",
            "message": {
                "model": "claude-haiku-4-5-20251001",
                "usage": {
                    "input_tokens": 10,
                    "cache_creation_input_tokens": 5,
                    "cache_read_input_tokens": 7,
                    "output_tokens": 1,
                },
            },
        },
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "usage of words"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 33}},
        {"type": "message_stop"},
    ).replace(b"\n\n", b"\r\n\r\n", 1)  # CRLF framing is read too
    for size in (1, 7, 64, len(stream)):
        meter = Meter("anthropic-messages")
        assert feed_in_pieces(meter, stream, size) == stream
        u = meter.usage
        assert (u.input_tokens, u.cache_write_tokens, u.cache_read_tokens, u.output_tokens) == (10, 5, 7, 33)
        assert u.model == "claude-haiku-4-5-20251001"


def test_openai_cached_tokens_are_not_counted_twice():
    meter = Meter("openai-responses")
    usage = {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 600}, "output_tokens": 50}
    meter.feed(sse({"type": "response.completed", "response": {"model": "gpt-5", "usage": usage}}))
    assert (meter.usage.input_tokens, meter.usage.cache_read_tokens, meter.usage.output_tokens) == (400, 600, 50)

    meter = Meter("openai-chat")
    body = {
        "model": "gpt-4.1",
        "usage": {"prompt_tokens": 90, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 40}},
    }
    meter.read_json(json.dumps(body).encode())
    assert (meter.usage.input_tokens, meter.usage.cache_read_tokens, meter.usage.output_tokens) == (50, 40, 9)


def test_chat_usage_chunk_kept_back_only_when_the_gateway_asked_for_it():
    chunks = (
        sse(
            {"choices": [{"delta": {"content": "hi"}}], "usage": None},
            {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
            named=False,
        )
        + b"data: [DONE]\n\n"
    )
    kept = Meter("openai-chat", strip_usage_chunk=True)
    out = kept.feed(chunks)
    assert b'"choices": []' not in out and out.endswith(b"data: [DONE]\n\n")
    assert (kept.usage.input_tokens, kept.usage.output_tokens) == (3, 2)
    assert Meter("openai-chat").feed(chunks) == chunks


def test_prices(settings):
    assert cost_usd("gpt-5", input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=200_000) == Decimal(
        "2.275000"
    )
    assert prices_for("claude-sonnet-4-5-20250929") == prices_for("claude-sonnet-4-5")
    assert prices_for("gpt-4.1-mini-2025-04-14")["input"] == Decimal("0.40")
    assert prices_for("some-new-model") == prices_for("default")
    assert prices_for("default")["output"] == Decimal(75)  # unknown models are priced high, not free
    assert cost_usd("claude-haiku-4-5", input_tokens=1) == Decimal("0.000001")

    settings.GOLDPATH = {
        **settings.GOLDPATH,
        "MODEL_PRICES": {"gpt-5": {"input": 2}, "house-model": {"input": "0.5", "output": 1}},
    }
    assert prices_for("gpt-5") == {
        "input": Decimal(2),
        "output": Decimal(10),
        "cache_read": Decimal("0.125"),
        "cache_write": Decimal("1.25"),
    }
    assert prices_for("house-model")["cache_read"] == Decimal("0.5")


def test_a_stream_ended_before_its_usage_is_charged_the_text_it_relayed():
    from catalog.gateway.metering import Usage

    anthropic = sse(
        {"type": "message_start", "message": {"model": "claude-sonnet-4-5", "usage": {"input_tokens": 9}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "t" * 8}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "x" * 40}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{" * 12}},
    )
    responses = sse(
        {"type": "response.output_text.delta", "delta": "y" * 20},
        {"type": "response.function_call_arguments.delta", "delta": "z" * 20},
        {"type": "response.custom_tool_call_input.delta", "delta": "p" * 8},
    )
    chat = sse(
        {"choices": [{"delta": {"content": "c" * 30}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "a" * 10}}]}}]},
        named=False,
    )
    for protocol, stream, expected in (
        ("anthropic-messages", anthropic, 15),
        ("openai-responses", responses, 12),
        ("openai-chat", chat, 10),
    ):
        meter = Meter(protocol)
        relayed = meter.feed(stream)
        assert not meter.final
        assert meter.settle(Usage(output_tokens=1), relayed, 0).output_tokens == expected
        assert meter.settle(Usage(output_tokens=500), relayed, 0).output_tokens == 500  # the larger is kept
    meter = Meter("openai-chat")
    assert meter.settle(Usage(), meter.feed(sse({"choices": [{"delta": {"content": "ab"}}]})), 0).output_tokens == 1

    # a stream that reached its closing usage is charged what it reports
    meter = Meter("anthropic-messages")
    closing = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}
    relayed = meter.feed(anthropic + sse(closing))
    assert meter.final and meter.settle(meter.usage, relayed, 0).output_tokens == 3


def test_an_odd_model_name_from_upstream_is_stored_escaped():
    meter = Meter("openai-chat")
    meter.read_json(json.dumps({"model": "gpt-5\u0000\ud800", "usage": {"prompt_tokens": 1}}).encode())
    assert meter.usage.model == '"gpt-5\\u0000\\ud800"'
