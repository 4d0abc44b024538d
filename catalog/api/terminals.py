"""Terminal sessions of workspaces and their asciicast recordings, read through the API.

A session is an audit fact: who typed into which workspace, when, how much. The terminal itself is a WebSocket
(catalog.terminals); reads go through catalog.terminals.selectors, which the workspace page uses too.
"""

from __future__ import annotations

import uuid

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import TerminalSession
from ..services.errors import InvalidInput
from ..terminals import services as terminal_services
from ..terminals.selectors import visible_terminal_sessions
from .base import GoldpathAPI


class TerminalSessionSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    duration_s = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = TerminalSession
        fields = [
            "id", "workspace", "user", "client", "opened_at", "closed_at", "duration_s",
            "bytes_in", "bytes_out", "recorded", "recording_truncated", "close_reason",
        ]  # fmt: skip
        read_only_fields = fields


class TerminalSessionViewSet(GoldpathAPI, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TerminalSessionSerializer

    def get_queryset(self):
        qs = visible_terminal_sessions(self.request.user)
        workspace = self.request.query_params.get("workspace")
        if workspace and self.action == "list":
            try:
                qs = qs.filter(workspace_id=uuid.UUID(workspace))
            except ValueError as exc:
                raise InvalidInput("workspace must be a workspace id.", errors={"workspace": ["Not a UUID."]}) from exc
        return qs

    @extend_schema(parameters=[OpenApiParameter("workspace", OpenApiTypes.UUID, description="only this workspace's")])
    def list(self, request: Request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={(200, "application/x-asciicast"): OpenApiTypes.STR, 404: None})
    @action(detail=True, methods=["get"])
    def recording(self, request: Request, pk=None) -> HttpResponse:
        """The session's asciicast v2 recording (templates with `record_sessions`); 404 when it was not recorded."""
        session = self.get_object()
        text = TerminalSession.objects.filter(pk=session.pk, recorded=True).values_list("recording", flat=True).first()
        if not text:
            return HttpResponse(
                b'{"detail": "This session was not recorded."}', status=404, content_type="application/json"
            )
        response = HttpResponse(text.encode(), content_type="application/x-asciicast")
        response["Content-Disposition"] = f'attachment; filename="terminal-{session.pk}.cast"'
        return response


class WebSocketOnlyView(GoldpathAPI, APIView):
    """`workspaces/{id}/terminal/` and `workspaces/{id}/agent/` are WebSockets (catalog.terminals.routing, served
    by the ASGI application); a plain request gets 426 Upgrade Required."""

    @extend_schema(
        summary="Terminal WebSocket (upgrade)",
        description=(
            "Open with a WebSocket upgrade (session cookie from the same origin, or `Authorization: Token <key>`). "
            'Send text frames `{"data": "<keystrokes>"}` or `{"resize": {"cols": 120, "rows": 40}}`; receive '
            "binary frames of terminal output. Only the workspace's owner may open it (403 / close 4403); a "
            "workspace that is not running closes with 4409, an agent not connected yet with 4503, a workspace "
            "stopping while open with 4410."
        ),
        responses={426: None},
    )
    def get(self, request: Request, pk=None) -> Response:
        return Response(
            {"detail": "This endpoint is a WebSocket: connect with an Upgrade request."},
            status=426,
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )


class AgentTokenView(GoldpathAPI, APIView):
    """`POST workspaces/{id}/agent/token/` with `Authorization: Bearer <session key>`: the local-sandbox session
    supervisor asks for a new agent token before it restarts a dead agent (no user credentials: the key is the
    supervisor's, signed for one start; catalog.terminals.services.session_key)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def post(self, request: Request, pk=None) -> Response:
        auth = request.headers.get("Authorization", "")
        key = auth[7:].strip() if auth.startswith("Bearer ") else ""
        token = terminal_services.agent_token_reissue(workspace_id=pk, key=key) if key else None
        if token is None:
            return Response({"detail": "Not this workspace's current session."}, status=403)
        return Response({"token": token})
