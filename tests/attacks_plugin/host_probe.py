"""Run inside tests/hostproject's settings (AllowAny, BasicAuthentication, no pagination, DRF's own error handler):
every URL Goldpath mounts, every method, anonymous and as a signed-in developer, with made-up URL arguments.
Prints one JSON line per finding: what answered 2xx to an anonymous caller, what answered 500, which list was not
paginated. Started by test_host_api_attacks.py as a separate process (the host's settings are not the tests')."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "hostproject"), str(ROOT)]
os.environ["DJANGO_SETTINGS_MODULE"] = "hostsite.settings"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import URLPattern, URLResolver, get_resolver  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

# public by design (DESIGN.md "API shape": schema, docs and health are public; the provenance key is public)
PUBLIC = ("goldpath/api/schema/", "goldpath/api/docs/", "goldpath/api/v1/provenance/key/", "goldpath/healthz")
METHODS = ("get", "post", "put", "patch", "delete")
HOSTILE_QUERIES = (
    "?page_size=999999999999999999999",
    "?page_size=-1&page=0",
    "?page=99999999999999999999",
    "?cursor=%ff%fe",
    "?cursor=cD0yMDI2LTEzLTQ1",  # base64 of a position that is no date
    "?after=-1",
    "?after=1e400",
    "?ordering=password",
    "?status=%00",
    "?team=../../x&tool=%00&commit=zz&line=-1&path=../../etc/passwd",
    "?format=api",
    "?created_after=not-a-date&created_before=9999-99-99",
)


def routes(patterns, prefix: str = ""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from routes(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.callback


def concrete(route: str) -> str:
    """A URL for a route pattern, with made-up values for its arguments."""
    path = route.replace("^", "").replace("$", "").replace("\\.", ".")
    path = re.sub(r"\(\?P<format>[^)]*\)", "json", path)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: "1" if m[1] in ("pk", "number", "id") else "x", path)
    path = re.sub(r"<int:\w+>", "1", path)
    path = re.sub(r"<(?:\w+:)?\w+>", "x", path)
    return "/" + path.replace("/?", "/")


def main() -> None:
    call_command("migrate", verbosity=0, interactive=False)
    from rest_framework.authtoken.models import Token

    from tests.factories import UserFactory

    user = UserFactory(username="probe-dev", role="developer")
    token = Token.objects.create(user=user).key
    anonymous = Client(raise_request_exception=False, HTTP_HOST="127.0.0.1")
    signed_in = Client(raise_request_exception=False, HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {token}")
    seen = 0
    for route, callback in routes(get_resolver().url_patterns):
        if not route.startswith("goldpath/") or route.startswith(PUBLIC):
            continue
        cls = getattr(callback, "cls", None)
        url = concrete(route)
        for method in METHODS:
            for who, client in (("anonymous", anonymous), ("developer", signed_in)):
                response = getattr(client, method)(url, data={} if method == "get" else None)
                seen += 1
                if response.status_code >= 500:
                    print(json.dumps({"finding": "500", "who": who, "method": method, "url": url}))
                if who == "anonymous" and 200 <= response.status_code < 300 and method != "options":
                    print(json.dumps({"finding": "anonymous_2xx", "method": method, "url": url}))
                if who == "anonymous" and cls is not None and issubclass(cls, APIView):
                    if response.status_code not in (401, 403, 404, 405):
                        print(
                            json.dumps(
                                {
                                    "finding": "api_not_refused",
                                    "method": method,
                                    "url": url,
                                    "status": response.status_code,
                                }
                            )
                        )
        if cls is not None and issubclass(cls, APIView):
            for query in HOSTILE_QUERIES:
                response = signed_in.get(url + query)
                if response.status_code >= 500:
                    print(json.dumps({"finding": "500", "who": "developer", "method": "get", "url": url + query}))
        if cls is not None and issubclass(cls, APIView) and "(?P<" not in route and "<" not in route:
            response = signed_in.get(url)
            body = response.json() if response.get("Content-Type", "").startswith("application/json") else None
            if response.status_code == 200 and isinstance(body, list):
                print(json.dumps({"finding": "unpaginated", "url": url}))
    print(json.dumps({"done": seen, "rest_framework": settings.REST_FRAMEWORK.get("DEFAULT_PERMISSION_CLASSES")}))


if __name__ == "__main__":
    main()
