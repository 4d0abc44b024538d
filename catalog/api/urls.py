"""API v1 routes."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from .access import AccessRequestViewSet, GrantViewSet
from .agent_groups import AgentGroupViewSet
from .agent_runs import AgentRunViewSet
from .audit import AuditEventViewSet
from .auth import TokenDetailView, TokenListView, TokenView
from .backstage import BackstageEntitiesView
from .policy import AuthzCheckView, OutOfPolicyBulkView, OutOfPolicyView
from .provenance import ProvenanceKeyView, ProvenanceView
from .repositories import RepositoryViewSet
from .teams import TeamViewSet, UserViewSet
from .terminals import AgentTokenView, TerminalSessionViewSet, WebSocketOnlyView
from .tools import ToolViewSet
from .usage import AdoptionReportView, UsageEventViewSet
from .vendor_keys import VendorApiKeyViewSet
from .workspaces import BuildViewSet, TemplateViewSet, WorkspaceViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("tools", ToolViewSet, basename="tool")
router.register("teams", TeamViewSet, basename="team")
router.register("users", UserViewSet, basename="user")
router.register("audit-events", AuditEventViewSet, basename="auditevent")
router.register("access-requests", AccessRequestViewSet, basename="accessrequest")
router.register("grants", GrantViewSet, basename="grant")
router.register("agent-groups", AgentGroupViewSet, basename="agentgroup")
router.register("agent-runs", AgentRunViewSet, basename="agentrun")
router.register("vendor-keys", VendorApiKeyViewSet, basename="vendorapikey")
router.register("usage-events", UsageEventViewSet, basename="usageevent")
router.register("templates", TemplateViewSet, basename="template")
router.register("workspaces", WorkspaceViewSet, basename="workspace")
router.register("builds", BuildViewSet, basename="build")
router.register("terminal-sessions", TerminalSessionViewSet, basename="terminalsession")
router.register("repositories", RepositoryViewSet, basename="repository")

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    path("auth/tokens/", TokenListView.as_view(), name="auth-token-list"),
    path("auth/tokens/<str:token_id>/", TokenDetailView.as_view(), name="auth-token-detail"),
    path("backstage/entities/", BackstageEntitiesView.as_view(), name="backstage-entities"),
    path("authz/check/", AuthzCheckView.as_view(), name="authz-check"),
    path("out-of-policy/", OutOfPolicyView.as_view(), name="out-of-policy"),
    path("out-of-policy/bulk/", OutOfPolicyBulkView.as_view(), name="out-of-policy-bulk"),
    path("reports/adoption/", AdoptionReportView.as_view(), name="report-adoption"),
    path("provenance/", ProvenanceView.as_view(), name="provenance"),
    path("provenance/key/", ProvenanceKeyView.as_view(), name="provenance-key"),
    # WebSockets (catalog.terminals.routing, served by the ASGI application): a plain GET answers 426
    path("workspaces/<uuid:pk>/terminal/", WebSocketOnlyView.as_view(), name="workspace-terminal"),
    path("workspaces/<uuid:pk>/agent/", WebSocketOnlyView.as_view(), name="workspace-agent"),
    path("workspaces/<uuid:pk>/agent/token/", AgentTokenView.as_view(), name="workspace-agent-token"),
    *router.urls,
]
