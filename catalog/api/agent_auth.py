"""`Authorization: Agent <token>`: the identity of one agent run, accepted only on the run's own socket.

The socket is catalog/runners/agentsock.py, and the token is accepted only on that run's own endpoints.

Over ordinary HTTP every agent token is refused (401), so a token that leaks out of a sandbox is useless.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from ..agents.identity import AgentPrincipal, is_agent, run_for_token
from ..runners.agentsock import ENVIRON_KEY

SOCKET_ONLY = "Agent tokens are accepted only through the run's own socket (GOLDPATH_AGENT_SOCKET in its sandbox)."


class AgentTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Agent"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        socket_run = request.META.get(ENVIRON_KEY)
        if not socket_run:
            raise exceptions.AuthenticationFailed(SOCKET_ONLY)
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid agent token header.")
        run = run_for_token(header[1].decode(errors="replace"))
        if run is None:
            raise exceptions.AuthenticationFailed("Agent token unknown, expired or revoked.")
        if str(run.pk) != str(socket_run):
            raise exceptions.AuthenticationFailed("This agent token belongs to another run's socket.")
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
            "description": "`Agent <token>`: one run's short-lived agent identity, accepted only through the "
            "run's own Unix socket inside its sandbox (`GOLDPATH_AGENT_SOCKET`) and only on its own run's "
            "`progress/` and `result/` endpoints; refused over HTTP.",
        }
