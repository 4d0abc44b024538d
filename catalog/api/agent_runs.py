"""Agent runs API: one run with its usage and logs, and the run's own agent's progress and result endpoints.

Anyone who may see the run reads it (`?after=N` pages its logs); an agent identity token reaches only its own
run's `progress/` and `result/`.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from .. import selectors
from ..agents.identity import is_agent
from ..agents.usage_view import RunUsage, run_usage
from ..models import AgentRun, AgentRunLogLine
from ..services.agent_runs import agent_run_report
from ..services.errors import InvalidInput
from .agent_auth import AgentTokenAuthentication, IsOwnRunAgent
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .tools import StrictSerializerMixin

LOG_PAGE = 1000


RunUsageSerializer = inline_serializer(
    "RunUsage",
    {
        "model_calls": serializers.IntegerField(),
        "input_tokens": serializers.IntegerField(),
        "output_tokens": serializers.IntegerField(),
        "cache_read_tokens": serializers.IntegerField(),
        "cache_write_tokens": serializers.IntegerField(),
        "cost_usd": serializers.CharField(help_text="dollars, 6 decimals"),
        "models": serializers.ListField(child=serializers.CharField()),
        "demo": serializers.BooleanField(help_text="some call was answered by the offline demo model"),
        "reported": serializers.DictField(help_text="the usage the agent's CLI printed about itself, or {}"),
    },
)


class AgentRunSummarySerializer(serializers.ModelSerializer):
    """A run; `usage` comes from catalog.agents.usage_view (live while in flight, stored once ended). A caller
    serializing many runs passes `context={"usage": runs_usage(runs)}` (one query for all)."""

    tool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tool_version = serializers.CharField(source="tool_version.version", read_only=True)
    duration_s = serializers.FloatField(read_only=True)
    diff_stat = serializers.JSONField(read_only=True)
    usage = serializers.SerializerMethodField()
    gateway_refusal = serializers.SerializerMethodField()

    class Meta:
        model = AgentRun
        fields = [
            "id",
            "index",
            "tool",
            "tool_version",
            "model",
            "status",
            "started_at",
            "finished_at",
            "duration_s",
            "exit_code",
            "error",
            "progress",
            "diff_stat",
            "test_exit_code",
            "usage",
            "gateway_refusal",
        ]
        read_only_fields = fields

    def _usage(self, run: AgentRun) -> RunUsage:
        usage = (self.context.get("usage") or {}).get(run.pk) or getattr(run, "_usage_view", None)
        if usage is None:
            usage = run._usage_view = run_usage(run)
        return usage

    @extend_schema_field(RunUsageSerializer)
    def get_usage(self, run: AgentRun) -> dict:
        return self._usage(run).as_api()

    def get_gateway_refusal(self, run: AgentRun) -> str:
        return self._usage(run).refusal


class AgentRunSerializer(AgentRunSummarySerializer):
    group = serializers.PrimaryKeyRelatedField(read_only=True)
    identity = serializers.CharField(source="principal", read_only=True)

    class Meta(AgentRunSummarySerializer.Meta):
        fields = [
            *AgentRunSummarySerializer.Meta.fields,
            "group",
            "identity",
            "worker",
            "sandbox",
            "diff",
            "test_output",
            "result",
            "log_seq",
        ]
        read_only_fields = fields


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentRunLogLine
        fields = ["seq", "stream", "text", "at"]
        read_only_fields = fields


class ProgressSerializer(StrictSerializerMixin, serializers.Serializer):
    progress = serializers.CharField(max_length=500)


class ResultSerializer(StrictSerializerMixin, serializers.Serializer):
    result = serializers.DictField()


class AgentRunViewSet(GoldpathAPI, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One agent run; its logs (`?after=N`); and, for the run's own agent identity only, progress and results."""

    parser_classes = PARSER_CLASSES

    serializer_class = AgentRunSerializer

    def get_queryset(self):
        return selectors.visible_agent_runs(self.request.user)

    def get_authenticators(self):
        authenticators = super().get_authenticators()
        return [AgentTokenAuthentication(), *authenticators]

    def get_permissions(self):
        if self.action in ("progress", "result"):
            return [IsOwnRunAgent()]
        return super().get_permissions()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if is_agent(request.user) and self.action not in ("progress", "result"):
            raise PermissionDenied("An agent identity may call only its own run's agent endpoints.")

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="only lines with seq > after")],
        responses={200: LogLineSerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def logs(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        try:
            after = int(request.query_params.get("after", 0))
        except ValueError:
            raise InvalidInput("after must be an integer.", errors={"after": ["Give an integer."]}) from None
        lines = list(run.log_lines.filter(seq__gt=after).order_by("seq")[:LOG_PAGE])
        return Response(
            {
                "run": run.pk,
                "status": run.status,
                "next_after": lines[-1].seq if lines else after,
                "lines": LogLineSerializer(lines, many=True).data,
            }
        )

    def _own_run(self, request) -> AgentRun:
        return request.user.run

    @extend_schema(request=ProgressSerializer, responses={200: AgentRunSummarySerializer})
    @action(detail=True, methods=["post"])
    def progress(self, request: Request, pk: str) -> Response:
        serializer = ProgressSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = agent_run_report(
            run=self._own_run(request), progress=serializer.validated_data["progress"]
        )
        return Response(AgentRunSummarySerializer(run).data)

    @extend_schema(request=ResultSerializer, responses={200: AgentRunSummarySerializer})
    @action(detail=True, methods=["post"])
    def result(self, request: Request, pk: str) -> Response:
        serializer = ResultSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = agent_run_report(run=self._own_run(request), result=serializer.validated_data["result"])
        return Response(AgentRunSummarySerializer(run).data)
