"""The `demo` upstream: the built-in offline demo model, answered in-process and metered like a vendor.

The `demo` upstream: the built-in offline demo model (catalog.gateway.scripted) answered in-process, metered
and recorded exactly like a vendor's answer (ModelCall.upstream = `demo`), so budgets and costs show offline."""

from __future__ import annotations

import json

from django.http import HttpResponse, StreamingHttpResponse

from . import recorder, scripted
from .admission import DEMO, Call
from .metering import Meter, Usage
from .protocols import ANTHROPIC_COUNT_TOKENS
from .upstream import RecordedResponse, Started, metered, record, upstream_body


def answer(call: Call) -> HttpResponse | StreamingHttpResponse:
    """The built-in offline demo model, answered in-process (ModelCall.upstream = `demo`)."""
    if call.protocol == ANTHROPIC_COUNT_TOKENS:
        response: HttpResponse | StreamingHttpResponse = HttpResponse(
            json.dumps({"input_tokens": max(1, len(call.body) // 4)}), content_type="application/json"
        )
        response["x-goldpath-upstream"] = DEMO
        return response
    answer = scripted.respond(call.protocol, call.payload)
    usage = Usage(
        input_tokens=int(answer.usage.get("input_tokens") or 0),
        output_tokens=int(answer.usage.get("output_tokens") or 0),
        model=answer.model,
    )
    if answer.content_type.startswith("text/event-stream"):
        # the same event handling as a real upstream (a chat usage chunk the client did not ask for is kept back)
        meter = Meter(call.protocol, strip_usage_chunk=upstream_body(call)[1])

        def chunks():
            sent: list[bytes] = []
            try:
                yield from metered(answer.chunks, meter, sent)
            finally:
                relayed = b"".join(sent)
                settled = meter.settle(usage, relayed, call.state.ref)
                recorder.submit(lambda: record(call, DEMO, answer.status, settled, relayed, streamed=True))

        body = Started(chunks(), on_unstarted=lambda: record(call, DEMO, answer.status, usage, b"", streamed=True))
        response = StreamingHttpResponse(body, status=answer.status, content_type=answer.content_type)
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
    else:
        data = b"".join(answer.chunks)
        response = RecordedResponse(
            data,
            status=answer.status,
            content_type=answer.content_type,
            on_close=lambda: record(call, DEMO, answer.status, usage, data, streamed=False),
        )
    response["x-goldpath-upstream"] = DEMO
    return response
