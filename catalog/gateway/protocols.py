"""The wire protocols the gateway serves: their names (ModelCall.protocol), vendor flavor and upstream path."""

from __future__ import annotations

ANTHROPIC_MESSAGES = "anthropic-messages"
ANTHROPIC_COUNT_TOKENS = "anthropic-count-tokens"  # free: forwarded, not metered
OPENAI_RESPONSES = "openai-responses"
OPENAI_CHAT = "openai-chat"

FLAVOR = {
    ANTHROPIC_MESSAGES: "anthropic",
    ANTHROPIC_COUNT_TOKENS: "anthropic",
    OPENAI_RESPONSES: "openai",
    OPENAI_CHAT: "openai",
}
PATH = {
    ANTHROPIC_MESSAGES: "/v1/messages",
    ANTHROPIC_COUNT_TOKENS: "/v1/messages/count_tokens",
    OPENAI_RESPONSES: "/v1/responses",
    OPENAI_CHAT: "/v1/chat/completions",
}
# the GOLDPATH setting naming each protocol's upstream
UPSTREAM_SETTING = {"anthropic": "UPSTREAM_ANTHROPIC", "openai": "UPSTREAM_OPENAI"}
METERED = frozenset({ANTHROPIC_MESSAGES, OPENAI_RESPONSES, OPENAI_CHAT})
