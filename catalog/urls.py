"""Page routes."""

from django.urls import path

from .views import access, agents, reports, tools

app_name = "catalog"

urlpatterns = [
    path("", tools.tool_list, name="tool-list"),
    path("tools/<slug:slug>/", access.tool_page, name="tool-access"),
    path("tools/<slug:slug>/access-panel/", access.tool_access_panel, name="tool-access-panel"),
    path("tools/<slug:slug>/request-access/", access.tool_request_access, name="tool-request-access"),
    path("teams/<slug:slug>/", access.team_page, name="team-detail"),
    path("teams/<slug:slug>/grants/", access.team_grant, name="team-grant"),
    path("grants/<int:pk>/revoke/", access.grant_revoke, name="grant-revoke"),
    path("access-requests/", access.access_request_queue, name="access-requests"),
    path("access-requests/<int:pk>/<str:verdict>/", access.access_request_decide, name="access-request-decide"),
    path("authz/simulator/", access.simulator, name="simulator"),
    path("out-of-policy/", access.out_of_policy, name="out-of-policy"),
    path("reports/adoption/", reports.adoption, name="adoption-report"),
    path("agents/", agents.agent_groups, name="agent-groups"),
    path("agents/<int:pk>/", agents.agent_group, name="agent-group"),
    path("agents/<int:pk>/grid/", agents.agent_group_grid, name="agent-group-grid"),
    path("agents/<int:pk>/cancel/", agents.agent_group_cancel, name="agent-group-cancel"),
    path("agents/<int:pk>/accept/", agents.agent_group_accept, name="agent-group-accept"),
    path("provenance/", agents.provenance_lookup, name="provenance"),
]
