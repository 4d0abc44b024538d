"""A run's transcript digest: sha256 over the ordered request and response bodies the gateway saw.

Each call contributes its request body then its response body, each prefixed by its length as 8 bytes
big-endian (so no two different transcripts hash alike by moving bytes across a boundary), in the order
the gateway recorded the calls (ModelCall id). A run with no model call has no digest ("").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def transcript_sha256(bodies: Iterable[tuple[bytes, bytes]]) -> str:
    digest = hashlib.sha256()
    calls = 0
    for request, response in bodies:
        for part in (bytes(request), bytes(response)):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        calls += 1
    return digest.hexdigest() if calls else ""


def run_transcript_sha256(run_id: int) -> str:
    """The digest over a run's recorded model calls (refused calls included: they were seen too)."""
    from ..models import ModelCall

    rows = ModelCall.objects.filter(run_id=run_id).order_by("id").values_list("request_body", "response_body")
    return transcript_sha256((bytes(req), bytes(resp)) for req, resp in rows.iterator())
