"""`Authorization: Agent <token>`: the identity of one agent run, accepted only on its own endpoints."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from ..agents.identity import AgentPrincipal, is_agent, run_for_token


class AgentTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Agent"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid agent token header.")
        run = run_for_token(header[1].decode(errors="replace"))
        if run is None:
            raise exceptions.AuthenticationFailed("Agent token unknown, expired or revoked.")
        return AgentPrincipal(run), None

    def authenticate_header(self, request) -> str:
        return 'Agent realm="agent-run"'


class IsOwnRunAgent(BasePermission):
    """Only the run's own agent identity; humans (even admins) and other runs' agents are refused."""

    message = "Only the run's own agent identity may call this endpoint."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not is_agent(user):
            return False
        return str(user.run.pk) == str(view.kwargs.get("pk"))


class AgentTokenScheme(OpenApiAuthenticationExtension):
    target_class = "catalog.api.agent_auth.AgentTokenAuthentication"
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Agent <token>`: one run's short-lived agent identity (its own run's endpoints only).",
        }
