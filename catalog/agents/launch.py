"""What a real CLI is launched with: its filled-in argv and the environment pointing it at Goldpath's gateway.

Inside the sandbox the gateway is the proxy's own port (`http://127.0.0.1:3128`, relayed to the web
tier's /gateway/v1/); the API-key variables hold the run's gateway credential, never a vendor key."""

from __future__ import annotations

from ..conf import goldpath_settings
from ..models import AgentRun, NetworkPolicy
from ..runners.gateway_relay import GatewayRoute
from ..runners.sandbox import expand_argv

GATEWAY_INSIDE = "http://127.0.0.1:3128"  # the sandbox's proxy port: /v1/... there is the model gateway


def gateway_secrets(token: str) -> dict[str, str]:
    """The run's gateway credential under every name the CLIs read an API key from (Codex: only CODEX_API_KEY)."""
    names = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "CODEX_API_KEY", "GOLDPATH_GATEWAY_TOKEN")
    return {name: token for name in names}


def gateway_env() -> dict[str, str]:
    """Base URLs that point each CLI at the gateway through the sandbox's proxy port (never a vendor host)."""
    return {
        "GOLDPATH_GATEWAY": GATEWAY_INSIDE,
        "ANTHROPIC_BASE_URL": GATEWAY_INSIDE,
        "OPENAI_BASE_URL": f"{GATEWAY_INSIDE}/v1",
        "OPENAI_API_BASE": f"{GATEWAY_INSIDE}/v1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def gateway_route() -> GatewayRoute:
    """Where this worker relays its sandboxes' model calls: the web tier (GATEWAY_URL, default PORTAL_URL)."""
    return GatewayRoute.from_url(str(goldpath_settings.GATEWAY_URL or goldpath_settings.PORTAL_URL))


def _fill(text: str, run: AgentRun) -> str:
    return text.replace("{model}", run.model).replace("{gateway}", GATEWAY_INSIDE)


def tool_env(run: AgentRun) -> dict[str, str]:
    """The tool version's own non-secret environment, {model} and {gateway} filled (e.g. a CLI's side-task model)."""
    return {str(k): _fill(str(v), run) for k, v in (run.tool_version.env or {}).items()}


def launch_argv(run: AgentRun, prompt: str) -> list[str]:
    """The tool version's argv with {model} and {gateway} filled (then {prompt} and {index}); never a shell."""
    template = [_fill(part, run) for part in run.argv_template]
    return expand_argv(template, prompt, run.index)


def network_for(run: AgentRun) -> list[str]:
    """Always a proxy (so every attempt is logged); it allows only the tool version's hosts, if the group may."""
    if run.group.network_policy == NetworkPolicy.ALLOW_LISTED:
        return [str(h) for h in (run.tool_version.egress_hosts or [])]
    return []
