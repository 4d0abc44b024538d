"""ASGI entry point (uvicorn in `make run`): Goldpath's terminals over WebSocket, its pages and API over HTTP.

HTTP goes through the WSGI application on a thread pool (a2wsgi): Goldpath's views are synchronous and the model
gateway relays streams chunk by chunk from synchronous iterators, which Django's own ASGI handler would buffer
whole. Each streamed model call holds one thread, as it did under waitress (GOLDPATH_WEB_THREADS)."""

import os

from django.core.wsgi import get_wsgi_application

os.umask(0o077)  # what the web server writes under GOLDPATH_HOME is the owner's only
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
wsgi_application = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402

from catalog.terminals.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(wsgi_application, workers=int(os.environ.get("GOLDPATH_WEB_THREADS", "32"))),
        "websocket": websocket_application(""),
    }
)
