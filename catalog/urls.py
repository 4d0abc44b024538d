"""Page routes."""

from django.urls import path

from .views import access, reports, tools

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
]
