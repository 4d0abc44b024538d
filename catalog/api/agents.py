"""Agent groups and runs API, the agent-identity endpoints of a run, and provenance lookups."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import provenance_lookup, selectors
from ..agents import crypto
from ..agents.usage_view import RunUsage, group_total, run_usage, runs_usage
from ..models import (
    AgentGroup,
    AgentRun,
    AgentRunLogLine,
    AITool,
    DataClassification,
    NetworkPolicy,
    Team,
    VendorApiKey,
)
from ..models.agents import AgentApply
from ..services import agent_workspace
from ..services import agents as agent_services
from ..services.errors import InvalidInput
from .agent_auth import AgentTokenAuthentication, IsOwnRunAgent
from .base import GoldpathAPI
from .parsers import PARSER_CLASSES
from .tools import StrictSerializerMixin

LOG_PAGE = 1000


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
        group = agent_services.agent_group_create(actor=request.user, **data)
        return Response(AgentGroupSerializer(group).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: AgentGroupSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        group = agent_services.agent_group_cancel(group=self.get_object(), actor=request.user)
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
        group = agent_services.agent_group_accept(group=group, actor=request.user, run=run)
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
        from ..agents.identity import is_agent

        if is_agent(request.user) and self.action not in ("progress", "result"):
            from rest_framework.exceptions import PermissionDenied

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
        run = agent_services.agent_run_report(
            run=self._own_run(request), progress=serializer.validated_data["progress"]
        )
        return Response(AgentRunSummarySerializer(run).data)

    @extend_schema(request=ResultSerializer, responses={200: AgentRunSummarySerializer})
    @action(detail=True, methods=["post"])
    def result(self, request: Request, pk: str) -> Response:
        serializer = ResultSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = agent_services.agent_run_report(run=self._own_run(request), result=serializer.validated_data["result"])
        return Response(AgentRunSummarySerializer(run).data)


# --- provenance ---------------------------------------------------------------------------------


def provenance_payload(record) -> dict:
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
        import base64

        return Response(
            {
                "algorithm": "ed25519",
                "key_id": crypto.key_id(),
                "public_key": base64.b64encode(crypto.public_key_raw()).decode(),
                "pem": crypto.public_key_pem(),
            }
        )


# --- vendor API keys ----------------------------------------------------------------------------


class VendorApiKeySerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tool = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    value = serializers.SerializerMethodField()

    class Meta:
        model = VendorApiKey
        fields = ["id", "team", "tool", "env_var", "value", "last4", "created_at", "updated_at"]
        read_only_fields = fields

    def get_value(self, key) -> str:
        return f"********{key.last4}"


class VendorApiKeyInputSerializer(StrictSerializerMixin, serializers.Serializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    tool = serializers.SlugRelatedField(slug_field="slug", queryset=AITool.objects.all())
    env_var = serializers.CharField(max_length=100)
    value = serializers.CharField(max_length=4000, write_only=True)


class VendorApiKeyViewSet(GoldpathAPI,
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Vendor API keys per team x tool (platform engineers): stored encrypted, never shown again."""

    parser_classes = PARSER_CLASSES

    serializer_class = VendorApiKeySerializer

    def get_queryset(self):
        from .. import permissions as perms

        qs = VendorApiKey.objects.select_related("team", "tool").order_by("team__slug", "tool__slug")
        return qs if perms.can_manage_vendor_keys(self.request.user) else qs.none()

    def list(self, request, *args, **kwargs):
        from .. import permissions as perms

        if not perms.can_manage_vendor_keys(request.user):
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied("Only platform engineers manage vendor API keys.")
        return super().list(request, *args, **kwargs)

    @extend_schema(request=VendorApiKeyInputSerializer, responses={201: VendorApiKeySerializer})
    def create(self, request: Request) -> Response:
        serializer = VendorApiKeyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = agent_services.vendor_api_key_set(actor=request.user, **serializer.validated_data)
        return Response(VendorApiKeySerializer(key).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str) -> Response:
        from .. import permissions as perms

        if not perms.can_manage_vendor_keys(request.user):
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied("Only platform engineers manage vendor API keys.")
        agent_services.vendor_api_key_delete(key=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
