"""The model gateway's endpoints (mounted at /gateway/): the vendors' own API paths, answered through Goldpath.

A CLI whose base URL points here (through its run's egress proxy) works unchanged. Plain Django views: no session,
CSRF or DRF authentication; the run's (or workspace's) gateway credential is the API key. The rules live in
`admission`, the relay in `upstream` (the offline demo model in `demo_upstream`). An unexpected failure once the
run is known fails the run (`admission.gateway_failed`) and is answered 500 in the vendor's format."""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import admission, demo_upstream, scripted, upstream
from .errors import ANTHROPIC, OPENAI, GatewayError, error_response
from .protocols import ANTHROPIC_COUNT_TOKENS, ANTHROPIC_MESSAGES, FLAVOR, OPENAI_CHAT, OPENAI_RESPONSES


def _flavor_of(request: HttpRequest) -> str:
    """Anthropic clients send `anthropic-version` and usually `x-api-key`; anything else is answered as OpenAI."""
    return ANTHROPIC if "anthropic-version" in request.headers or "x-api-key" in request.headers else OPENAI


def _relay(request: HttpRequest, protocol: str) -> HttpResponse:
    started = time.perf_counter()
    flavor = FLAVOR[protocol]
    if request.method != "POST":
        return error_response(flavor, 405, "method_not_allowed", f"{request.method} is not allowed here; use POST")
    try:
        call = admission.admit(request, protocol, started)
    except GatewayError as err:
        return error_response(flavor, err.status, err.code, err.message, body=err.body)
    try:
        if call.upstream == admission.DEMO:  # the built-in offline model, answered in-process
            return demo_upstream.answer(call)
        return upstream.forward(call)
    except Exception as exc:  # noqa: BLE001 - a gateway bug must still fail the run, and answer as the vendor would
        err = admission.gateway_failed(call.state, protocol, exc)
        return error_response(flavor, err.status, err.code, err.message)


@csrf_exempt
def messages(request: HttpRequest) -> HttpResponse:
    """Anthropic Messages (Claude Code)."""
    return _relay(request, ANTHROPIC_MESSAGES)


@csrf_exempt
def count_tokens(request: HttpRequest) -> HttpResponse:
    """Anthropic token counting: admitted like a call, forwarded (or estimated by the demo), not metered."""
    return _relay(request, ANTHROPIC_COUNT_TOKENS)


@csrf_exempt
def responses(request: HttpRequest) -> HttpResponse:
    """OpenAI Responses (Codex). Codex first tries a WebSocket here (`GET`); 426 makes it fall back to
    streamed POST at once and for the rest of its session (a 404 would cost seconds of retries)."""
    if request.method == "GET":
        # no `Upgrade` header: it is hop-by-hop, which a WSGI server refuses from an application (500)
        return error_response(
            OPENAI, 426, "websocket_not_supported", "the Goldpath gateway serves Responses over HTTP POST only"
        )
    return _relay(request, OPENAI_RESPONSES)


@csrf_exempt
def chat_completions(request: HttpRequest) -> HttpResponse:
    """OpenAI Chat Completions (Aider)."""
    return _relay(request, OPENAI_CHAT)


@csrf_exempt
def models(request: HttpRequest) -> HttpResponse:
    """The models the run's tool version (the workspace's tools) may use, served by the gateway itself in the asking vendor's shape."""
    flavor = _flavor_of(request)
    if request.method != "GET":
        return error_response(flavor, 405, "method_not_allowed", f"{request.method} is not allowed here; use GET")
    try:
        state = admission.authenticate(request)
    except GatewayError as err:
        return error_response(flavor, err.status, err.code, err.message)
    names = [str(n) for n in state.model_names if "*" not in str(n)]
    return JsonResponse(scripted.models_list(flavor, names))


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(
        _flavor_of(request), 404, "not_found", f"the Goldpath gateway does not serve /v1/{rest} (only model calls)"
    )
