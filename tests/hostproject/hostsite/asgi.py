"""The host's ASGI entry (uvicorn): its pages and Goldpath's over HTTP, Goldpath's terminals over WebSocket under
the same prefix as `include("catalog.urls")` (README, "Add Goldpath to your Django portal")."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")
wsgi_application = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402

from catalog.terminals.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {"http": WSGIMiddleware(wsgi_application, workers=8), "websocket": websocket_application("goldpath/")}
)
