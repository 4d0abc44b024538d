"""Everything Goldpath serves, under whatever prefix the host mounts it.

Pages, API v1, schema and docs, health, the model gateway and metrics. Names live in the `goldpath` namespace (the API in `goldpath:api`)."""

from django.urls import include, path, re_path

from .api.schema import SchemaView, SwaggerView
from .health import healthz
from .metrics import views as metrics_views
from .services import tool_actions
from .views import (
    access,
    agents,
    audit,
    policy,
    reports,
    repositories,
    teams,
    terminals,
    tokens,
    tool_versions,
    tools,
    vendor_keys,
    workspaces,
)

app_name = "goldpath"
ACTIONS = tool_actions.URL_PATTERN  # the lifecycle table's actions (catalog.services.tool_actions)

urlpatterns = [
    path("", tools.tool_list, name="tool-list"),
    # "new" is therefore not usable as a tool slug in pages (the API still serves it)
    path("tools/new/", tools.tool_new, name="tool-new"),
    path("tools/<slug:slug>/", tools.tool_detail, name="tool-detail"),
    path("tools/<slug:slug>/edit/", tools.tool_edit, name="tool-edit"),
    path("tools/<slug:slug>/versions/new/", tool_versions.tool_version_new, name="tool-version-new"),
    path("tools/<slug:slug>/versions/<path:version>/edit/", tool_versions.tool_version_edit, name="tool-version-edit"),
    re_path(
        r"^tools/(?P<slug>[-a-zA-Z0-9_]+)/versions/(?P<version>[^/]+)/(?P<action>approve|reject)/$",
        tool_versions.tool_version_action,
        name="tool-version-action",
    ),
    re_path(rf"^tools/(?P<slug>[-a-zA-Z0-9_]+)/(?P<action>{ACTIONS})/$", tools.tool_action, name="tool-action"),
    path("reviews/", tools.review_queue, name="review-queue"),
    re_path(rf"^reviews/(?P<slug>[-a-zA-Z0-9_]+)/(?P<action>{ACTIONS})/$", tools.review_action, name="review-action"),
    path("teams/", teams.team_list, name="team-list"),
    path("teams/new/", teams.team_create, name="team-create"),
    path("teams/<slug:slug>/", teams.team_detail, name="team-detail"),
    path("teams/<slug:slug>/members/", teams.team_member_add, name="team-member-add"),
    path(
        "teams/<slug:slug>/members/<str:username>/<str:change>/",
        teams.team_member_change,
        name="team-member-change",
    ),
    path("audit/", audit.audit_log, name="audit-log"),
    path("audit/export.csv", audit.audit_log_csv, name="audit-log-csv"),
    path("tools/<slug:slug>/access-panel/", access.tool_access_panel, name="tool-access-panel"),
    path("tools/<slug:slug>/request-access/", access.tool_request_access, name="tool-request-access"),
    path("teams/<slug:slug>/grants/", teams.team_grant, name="team-grant"),
    path("grants/<int:pk>/revoke/", access.grant_revoke, name="grant-revoke"),
    path("grants/<int:pk>/budget/", access.grant_budget, name="grant-budget"),
    path("access-requests/", access.access_request_queue, name="access-requests"),
    path("access-requests/<int:pk>/<str:verdict>/", access.access_request_decide, name="access-request-decide"),
    path("authz/simulator/", policy.simulator, name="simulator"),
    path("out-of-policy/", policy.out_of_policy, name="out-of-policy"),
    path("reports/adoption/", reports.adoption, name="adoption-report"),
    path("golden-paths/", workspaces.template_gallery, name="template-gallery"),
    path("golden-paths/<slug:slug>/", workspaces.template_detail, name="template-detail"),
    path("golden-paths/<slug:slug>/new-workspace/", workspaces.workspace_new, name="workspace-new"),
    path("golden-paths/<slug:slug>/versions/", workspaces.template_versions, name="template-versions"),
    re_path(
        r"^golden-paths/(?P<slug>[-a-zA-Z0-9_]+)/versions/(?P<number>[0-9]{1,9})/(?P<action>validate|publish|activate)/$",
        workspaces.template_version_action,
        name="template-version-action",
    ),
    path("workspaces/", workspaces.workspace_list, name="workspace-list"),
    path("workspaces/<uuid:pk>/", workspaces.workspace_detail, name="workspace-detail"),
    path("workspaces/<uuid:pk>/log", workspaces.workspace_log, name="workspace-log"),
    path("workspaces/<uuid:pk>/edit/", workspaces.workspace_edit, name="workspace-edit"),
    path("workspaces/<uuid:pk>/terminal/", terminals.workspace_terminal, name="workspace-terminal"),
    re_path(
        r"^workspaces/(?P<pk>[0-9a-f-]{36})/(?P<action>start|stop|update|delete)/$",
        workspaces.workspace_action,
        name="workspace-action",
    ),
    path("agents/", agents.agent_groups, name="agent-groups"),
    path("agents/<int:pk>/", agents.agent_group, name="agent-group"),
    path("agents/<int:pk>/grid/", agents.agent_group_grid, name="agent-group-grid"),
    path("agents/<int:pk>/results/", agents.agent_group_results, name="agent-group-results"),
    path("agents/<int:pk>/cancel/", agents.agent_group_cancel, name="agent-group-cancel"),
    path("agents/<int:pk>/accept/", agents.agent_group_accept, name="agent-group-accept"),
    path("provenance/", agents.provenance_lookup, name="provenance"),
    path("vendor-keys/", vendor_keys.vendor_keys, name="vendor-keys"),
    path("vendor-keys/<int:pk>/delete/", vendor_keys.vendor_key_delete, name="vendor-key-delete"),
    path("repositories/", repositories.repository_list, name="repository-list"),
    path("repositories/<slug:slug>/edit/", repositories.repository_edit, name="repository-edit"),
    path("repositories/<slug:slug>/delete/", repositories.repository_delete, name="repository-delete"),
    path("account/token/", tokens.api_token, name="api-token"),
    path("healthz", healthz, name="healthz"),
    path("healthz/", healthz),
    path("api/v1/", include(("catalog.api.urls", "api"))),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", SwaggerView.as_view(url_name="goldpath:api-schema"), name="api-docs"),
    path("gateway/", include("catalog.gateway.urls")),
    path("metrics", metrics_views.metrics, name="metrics"),
    path("sso/", include("catalog.sso.urls")),
]
