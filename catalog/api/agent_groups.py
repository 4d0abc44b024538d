"""Agent groups API: one prompt fanned out to agents, from its launch to a result applied.

Launch one prompt fanned out to agents, list and read groups, cancel, accept a result, apply one into the
workspace the group started from.

Thin: the serializers validate, catalog.services.agent_groups (and agent_workspace for `apply`) decides and
changes state.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from .. import selectors
from ..agents.usage_view import RunUsage, group_total, runs_usage
from ..models import AgentGroup, AgentRun, DataClassification, NetworkPolicy, Team
from ..models.agents import AgentApply
from ..services import agent_workspace
from ..services.agent_groups import agent_group_accept, agent_group_cancel, agent_group_create
from ..services.errors import InvalidInput
from .agent_runs import AgentRunSummarySerializer, RunUsageSerializer
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .tools import StrictSerializerMixin


class AgentSpecSerializer(StrictSerializerMixin, serializers.Serializer):
    tool = serializers.SlugField(max_length=50)
    version = serializers.CharField(
        max_length=50,
        required=False,
        help_text="an approved version, exact (2.1.332) or the newest matching a prefix (2.1.x); "
        "default: the newest approved",
    )
    model = serializers.CharField(
        max_length=200, required=False, help_text="one of the version's models; default: its first"
    )
    count = serializers.IntegerField(min_value=1, max_value=100, default=1)


class AgentGroupCreateSerializer(StrictSerializerMixin, serializers.Serializer):
    prompt = serializers.CharField(max_length=20000)
    repository = serializers.CharField(
        max_length=100, required=False, help_text="slug of a repository registered for your team (or `workspace`)"
    )
    workspace = serializers.UUIDField(
        required=False,
        help_text="run agents here: start from this workspace's current checkout, uncommitted changes included "
        "(yours, running or stopped, local-sandbox); instead of `repository`",
    )
    base_ref = serializers.CharField(max_length=250, required=False, default=None, help_text="default: its branch")
    agents = AgentSpecSerializer(many=True, allow_empty=False, max_length=20)
    classification = serializers.ChoiceField(
        choices=DataClassification.choices, required=False, default=None, help_text="default: the repository's"
    )
    test_command = serializers.ListField(
        child=serializers.CharField(max_length=500), required=False, default=list, max_length=64
    )
    time_limit_s = serializers.IntegerField(required=False, min_value=1, allow_null=True, default=None)
    network_policy = serializers.ChoiceField(choices=NetworkPolicy.choices, required=False, default=NetworkPolicy.NONE)
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False, default=None)

    def validate(self, data: dict) -> dict:
        if ("repository" in data) == ("workspace" in data):
            text = "Give a repository or a workspace, not both." if "repository" in data else (
                "Give a repository or a workspace."
            )
            raise serializers.ValidationError({"repository": [text], "workspace": [text]})
        return data


class AgentApplySerializer(serializers.ModelSerializer):
    """A run applied into the group's workspace: `pending`, then `applied` (files), `conflict` (paths; the
    checkout was left exactly as it was) or `failed` (error)."""

    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AgentApply
        fields = [
            "id",
            "group",
            "run",
            "workspace",
            "requested_by",
            "status",
            "diff_sha256",
            "files",
            "conflicts",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class AgentGroupSerializer(serializers.ModelSerializer):
    requester = serializers.SlugRelatedField(slug_field="username", read_only=True)
    repository = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    runs = serializers.SerializerMethodField()
    accepted_run = serializers.PrimaryKeyRelatedField(read_only=True)
    counts = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField(help_text="the runs' usage summed (`reported` left out)")
    workspace = serializers.PrimaryKeyRelatedField(read_only=True, help_text="the workspace the runs started from")
    applies = serializers.SerializerMethodField(help_text="runs applied into the workspace, newest first")

    class Meta:
        model = AgentGroup
        fields = [
            "id",
            "status",
            "requester",
            "team",
            "prompt",
            "prompt_sha256",
            "repository",
            "workspace",
            "workspace_snapshot_sha256",
            "base_ref",
            "base_commit",
            "classification",
            "test_command",
            "agents",
            "time_limit_s",
            "network_policy",
            "decisions",
            "created_at",
            "finished_at",
            "accepted_run",
            "accept_status",
            "accepted_commit",
            "accepted_branch",
            "accept_error",
            "counts",
            "usage",
            "applies",
            "runs",
        ]
        read_only_fields = fields

    @extend_schema_field(AgentApplySerializer(many=True))
    def get_applies(self, group) -> list[dict]:
        if group.workspace_id is None:
            return []
        return AgentApplySerializer(group.applies.select_related("requested_by")[:50], many=True).data

    def _runs(self, group):
        cache = getattr(group, "_runs_cache", None)
        if cache is None:
            cache = list(group.runs.select_related("tool", "tool_version").order_by("index"))
            group._runs_cache = cache
        return cache

    def _runs_usage(self, group) -> dict[int, RunUsage]:
        cache = getattr(group, "_usage_cache", None)
        if cache is None:
            cache = group._usage_cache = runs_usage(self._runs(group))
        return cache

    def get_runs(self, group) -> list[dict]:
        return AgentRunSummarySerializer(self._runs(group), many=True, context={"usage": self._runs_usage(group)}).data

    @extend_schema_field(RunUsageSerializer)
    def get_usage(self, group) -> dict:
        total = group_total(self._runs_usage(group).values()).as_api()
        total.pop("reported")
        return total

    def get_counts(self, group) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self._runs(group):
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts


class AgentGroupListSerializer(AgentGroupSerializer):
    class Meta(AgentGroupSerializer.Meta):
        fields = [f for f in AgentGroupSerializer.Meta.fields if f not in ("runs", "decisions", "usage", "applies")]


class AcceptSerializer(StrictSerializerMixin, serializers.Serializer):
    run = serializers.IntegerField(min_value=1)


class AgentGroupViewSet(GoldpathAPI,
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """One prompt fanned out to agents. The policy decides every tool before anything launches."""

    parser_classes = PARSER_CLASSES

    serializer_class = AgentGroupSerializer

    def get_queryset(self):
        return selectors.visible_agent_groups(self.request.user).order_by("-created_at", "-id")

    def get_serializer_class(self):
        return AgentGroupListSerializer if self.action == "list" else AgentGroupSerializer

    @extend_schema(request=AgentGroupCreateSerializer, responses={201: AgentGroupSerializer})
    def create(self, request: Request) -> Response:
        serializer = AgentGroupCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["agents"] = [dict(a) for a in data["agents"]]
        group = agent_group_create(actor=request.user, **data)
        return Response(AgentGroupSerializer(group).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: AgentGroupSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        group = agent_group_cancel(group=self.get_object(), actor=request.user)
        return Response(AgentGroupSerializer(group).data)

    @extend_schema(request=AcceptSerializer, responses={202: AgentGroupSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        group = self.get_object()
        serializer = AcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = AgentRun.objects.filter(pk=serializer.validated_data["run"], group=group).first()
        if run is None:
            raise InvalidInput("No such run in this group.", errors={"run": ["Choose a run of this group."]})
        group = agent_group_accept(group=group, actor=request.user, run=run)
        return Response(AgentGroupSerializer(group).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=AcceptSerializer, responses={202: AgentApplySerializer})
    @action(detail=True, methods=["post"])
    def apply(self, request: Request, pk: str) -> Response:
        """Apply a succeeded run's diff into the workspace the group started from (its owner only). A worker does
        it: poll the group's `applies` (status `applied` with files, or `conflict` with paths: then the checkout
        was left exactly as it was)."""
        group = self.get_object()
        serializer = AcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = AgentRun.objects.filter(pk=serializer.validated_data["run"], group=group).first()
        if run is None:
            raise InvalidInput("No such run in this group.", errors={"run": ["Choose a run of this group."]})
        row = agent_workspace.agent_group_apply(group=group, actor=request.user, run=run)
        return Response(AgentApplySerializer(row).data, status=status.HTTP_202_ACCEPTED)
