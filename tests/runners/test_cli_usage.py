"""The usage the agent CLIs print about themselves, parsed from real captured output (samples below)."""

from __future__ import annotations

import json

import pytest

from catalog.agents.cli_usage import MAX_TOKENS, parse_usage

# Claude Code 2.1.332, -p --output-format stream-json --verbose, against the scripted model
# (the result line shortened to the fields that matter; the others are left in the first lines).
CLAUDE_OUTPUT = "\n".join(
    [
        '{"type":"system","subtype":"init","cwd":"/tmp/script-claude.zmpo/repo","session_id":"6b9be145-ffc9-4832-8bd3-9940ffd835f9","tools":["Task","Bash"]}',
        '{"type":"assistant","message":{"id":"msg_demob9063a87c4bb2ee3fe6df188","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Let me look at the environment first."}],"usage":{"input_tokens":22000,"output_tokens":1}}}',
        '{"type":"result","subtype":"success","is_error":false,"num_turns":3,"result":"Done: wrote GOLDPATH_DEMO.md. (Goldpath test model server)","session_id":"6b9be145-ffc9-4832-8bd3-9940ffd835f9","total_cost_usd":0.20019900000000002,"usage":{"input_tokens":65983,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":150,"output_tokens_details":{"thinking_tokens":0},"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},"inference_geo":"","iterations":[],"speed":"standard","fallback_credit":null},"modelUsage":{"claude-sonnet-4-5":{"inputTokens":65983,"outputTokens":150,"cacheReadInputTokens":0,"cacheCreationInputTokens":0,"costUSD":0.20019900000000002}}}',
    ]
)

# Codex CLI 0.171.0, exec --json, two turns' worth (one real turn.completed line, repeated).
CODEX_TURN = '{"type":"turn.completed","usage":{"input_tokens":31491,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":289,"reasoning_output_tokens":0}}'
CODEX_OUTPUT = "\n".join(
    [
        '{"type":"thread.started","thread_id":"01a23003-0562-7331-8030-c556c4033054"}',
        '{"type":"turn.started"}',
        '{"type":"item.completed","item":{"id":"item_5","type":"agent_message","text":"Done: wrote GOLDPATH_DEMO.md. (Goldpath test model server)"}}',
        CODEX_TURN,
        '{"type":"turn.started"}',
        CODEX_TURN.replace('"cached_input_tokens":0', '"cached_input_tokens":1000'),
    ]
)

# Aider 0.86.2, --no-pretty --message, model openai/gpt-4.1 (known prices, so it prints a cost).
AIDER_OUTPUT = """Aider v0.86.2
Main model: openai/gpt-4.1 with diff edit format
Weak model: openai/gpt-4.1-mini
Git repo: .git with 0 files
Repo-map: disabled

I will create GOLDPATH_DEMO.md.

Tokens: 2.6k sent, 44 received. Cost: $0.0056 message, $0.0056 session.

GOLDPATH_DEMO.md
Applied edit to GOLDPATH_DEMO.md
Commit ef35893 Goldpath demo (Goldpath test model server)
"""


def test_claude_result_event_gives_the_run_totals_and_cost():
    assert parse_usage("claude-stream-json", CLAUDE_OUTPUT) == {
        "input_tokens": 65983,
        "output_tokens": 150,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": "0.200199",
    }


def test_claude_without_a_result_event_reports_nothing():
    assert parse_usage("claude-stream-json", CLAUDE_OUTPUT.rsplit("\n", 1)[0]) == {}


def test_codex_sums_its_turns():
    assert parse_usage("codex-json", CODEX_OUTPUT) == {
        "input_tokens": 62982,
        "output_tokens": 578,
        "cache_read_tokens": 1000,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
    }


def test_aider_reads_tokens_and_session_cost():
    assert parse_usage("aider-text", AIDER_OUTPUT) == {
        "input_tokens": 2600,
        "output_tokens": 44,
        "cost_usd": "0.005600",
    }


def test_aider_sums_several_calls_with_suffixes_and_cache_and_keeps_the_last_session_cost():
    output = (
        "Tokens: 714 sent, 35 received.\n"
        "Tokens: 12k sent, 3.4k cache write, 1.5M cache hit, 1.2k received.\n"
        "Cost: $0.12 message, $0.15 session.\n"
    )
    assert parse_usage("aider-text", output) == {
        "input_tokens": 12714,
        "output_tokens": 1235,
        "cache_write_tokens": 3400,
        "cache_read_tokens": 1_500_000,
        "cost_usd": "0.150000",
    }


def test_aider_without_prices_prints_no_cost():
    assert parse_usage("aider-text", "Tokens: 597 sent, 40 received.\n") == {"input_tokens": 597, "output_tokens": 40}


def test_none_format_and_unknown_formats_report_nothing():
    assert parse_usage("none", CLAUDE_OUTPUT) == {}
    assert parse_usage("something-else", CLAUDE_OUTPUT) == {}


@pytest.mark.parametrize(
    "usage_format, output",
    [
        ("claude-stream-json", ""),
        ("claude-stream-json", "not json\n{broken\n[1,2]\nnull\n"),
        ("claude-stream-json", '{"type":"result","usage":"lots","total_cost_usd":"free"}'),
        (
            "claude-stream-json",
            '{"type":"result","usage":{"input_tokens":-5,"output_tokens":true},"total_cost_usd":-1}',
        ),
        ("claude-stream-json", '{"type":"result","usage":{"input_tokens":"12"},"total_cost_usd":"NaN"}'),
        ("codex-json", '{"type":"turn.completed","usage":[1]}\n{"type":"turn.completed"}\n'),
        ("codex-json", '{"type":"turn.completed","usage":{"input_tokens":1e400}}'),
        ("aider-text", "Tokens: lots sent, none received.\nCost: $free message, $x session.\n"),
        ("aider-text", "\x00" * 10000),
    ],
)
def test_garbage_never_raises_and_yields_no_bogus_numbers(usage_format, output):
    usage = parse_usage(usage_format, output)
    assert isinstance(usage, dict)
    for key, value in usage.items():
        if key == "cost_usd":
            assert float(value) >= 0
        else:
            assert isinstance(value, int) and 0 <= value <= MAX_TOKENS


def test_huge_numbers_are_capped():
    claude = json.dumps(
        {"type": "result", "usage": {"input_tokens": 10**30, "output_tokens": 1}, "total_cost_usd": 1e30}
    )
    usage = parse_usage("claude-stream-json", claude)
    assert usage["input_tokens"] == MAX_TOKENS
    assert usage["cost_usd"] == "1000000.000000"
    aider = "Tokens: 999999999999999M sent, 1 received.\n" * 3
    assert parse_usage("aider-text", aider)["input_tokens"] == MAX_TOKENS


def test_forged_usage_lines_inside_other_json_values_do_not_count():
    # A model answer quoting a usage line is a string inside an event, not a result event of its own.
    quoted = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": CODEX_TURN}]}})
    assert parse_usage("codex-json", quoted) == {}
