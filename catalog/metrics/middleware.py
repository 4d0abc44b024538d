"""HTTP request metrics by view.

The label is the resolved URL name (`goldpath:tool-list`), never the raw path: paths carry ids and would make the
series unbounded. With PROMETHEUS_MULTIPROC_DIR set (before the process starts), prometheus_client writes these
to files in that folder and `/metrics` sums every web process's files; without it they live in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

UNMATCHED = "<unmatched>"  # a path no URL pattern resolved (404s of unknown paths): one series, not one per path

REQUESTS = Counter(
    "goldpath_http_requests",
    "HTTP requests served, by resolved view name, method and status code.",
    ["view", "method", "status"],
)
LATENCY = Histogram(
    "goldpath_http_request_duration_seconds",
    "Time to answer an HTTP request (until the response object is returned), by resolved view name.",
    ["view"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def view_label(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.view_name or UNMATCHED) if match is not None else UNMATCHED


class HttpMetricsMiddleware:
    """Counts each request and observes its latency, labelled by view name (put it first in MIDDLEWARE)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        view = view_label(request)
        method = request.method if request.method in METHODS else "other"  # the method is client-chosen text
        REQUESTS.labels(view=view, method=method, status=str(response.status_code)).inc()
        LATENCY.labels(view=view).observe(time.perf_counter() - started)
        return response
