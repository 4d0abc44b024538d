"""WebSocket routes, mounted by the host's ASGI application under the same prefix as `catalog.urls`:

    application = ProtocolTypeRouter({
        "http": get_asgi_application(),
        "websocket": catalog.terminals.routing.websocket_application("goldpath/"),
    })
"""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from django.urls import path

from .auth import client_auth_stack
from .consumers import AgentLinkConsumer, TerminalConsumer

websocket_urlpatterns = [
    path("api/v1/workspaces/<uuid:pk>/terminal/", TerminalConsumer.as_asgi()),
    path("api/v1/workspaces/<uuid:pk>/agent/", AgentLinkConsumer.as_asgi()),
]


def websocket_application(prefix: str = "") -> Any:
    """Goldpath's WebSocket routes under `prefix` (the one `catalog.urls` is included under, e.g. "goldpath/")."""
    prefix = prefix.strip("/")
    routes = URLRouter(websocket_urlpatterns)
    return client_auth_stack(URLRouter([path(f"{prefix}/", routes)]) if prefix else routes)
