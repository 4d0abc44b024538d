"""Provenance API: who prompted what through which agent, and the portal's public signing key.

Lookups are by commit or by a line of a repository.
"""

from __future__ import annotations

import base64

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import provenance_lookup
from ..agents import crypto
from ..models import ProvenanceRecord
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES


def provenance_payload(record: ProvenanceRecord) -> dict:
    group = record.group
    predicate = record.statement.get("predicate", {})
    return {
        "commit": record.commit_sha,
        "tree": record.tree_sha,
        "branch": record.branch,
        "repository": record.repository.slug if record.repository else None,
        "repository_url": record.repository_url,
        "prompt": group.prompt,
        "prompt_sha256": group.prompt_sha256,
        "requested_by": group.requester.username,
        "team": record.team.slug,
        "agent": record.run.principal,
        "group": group.pk,
        "run": record.run.pk,
        "tool": predicate.get("tool"),
        "sandbox_policy_hash": predicate.get("sandbox", {}).get("policy_hash"),
        # signed since the model gateway (absent from older statements)
        "models": predicate.get("models"),
        "usage": predicate.get("usage"),
        "transcript_sha256": predicate.get("transcript_sha256"),
        "statement": record.statement,
        "signature": record.signature,
        "key_id": record.key_id,
        "created_at": record.created_at,
    }


class ProvenanceView(GoldpathAPI, APIView):
    """Who prompted what through which agent: by `?commit=<sha>`, or by
    `?repository=&path=&line=N&ref=` (git blame -> commit -> record). Auditors and the requester's team read."""

    parser_classes = PARSER_CLASSES

    @extend_schema(
        parameters=[
            OpenApiParameter("commit", str),
            OpenApiParameter("repository", str),
            OpenApiParameter("path", str),
            OpenApiParameter("line", int),
            OpenApiParameter("ref", str),
        ],
        responses={200: inline_serializer("Provenance", {"commit": serializers.CharField()})},
    )
    def get(self, request: Request) -> Response:
        match = provenance_lookup.lookup(request.user, request.query_params)
        if match is None:
            body = {"detail": "No provenance record you may read for that lookup.", "code": "not_found"}
            return Response(body, status=404)
        body = provenance_payload(match.record)
        if match.blame:
            body["blame"] = match.blame
        return Response(body)


class ProvenanceKeyView(GoldpathAPI, APIView):
    """The portal's Ed25519 public key (public: anyone may verify a signature)."""

    parser_classes = PARSER_CLASSES

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        responses={
            200: inline_serializer("ProvenanceKey", {"key_id": serializers.CharField(), "pem": serializers.CharField()})
        }
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "algorithm": "ed25519",
                "key_id": crypto.key_id(),
                "public_key": base64.b64encode(crypto.public_key_raw()).decode(),
                "pem": crypto.public_key_pem(),
            }
        )
