"""`/healthz`: public liveness of the database and the broker, for load balancers and `make run`."""

from __future__ import annotations

import time

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


def check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True, connection.vendor
    except Exception as exc:  # noqa: BLE001 - any failure means "down", reported by name
        return False, f"{type(exc).__name__}: {exc}"


def check_broker(timeout: float = 2.0) -> tuple[bool, str]:
    from celery import current_app as app  # the host's Celery app (portal.celery in the standalone portal)

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            return True, conn.transport_cls if isinstance(conn.transport_cls, str) else str(conn.transport_cls)
    except Exception as exc:  # noqa: BLE001
        return False, f"{type(exc).__name__}: {exc}"


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    db_ok, db_detail = check_database()
    broker_ok, broker_detail = check_broker()
    body = {
        "status": "ok" if db_ok and broker_ok else "unavailable",
        "database": {"ok": db_ok, "detail": db_detail},
        "broker": {"ok": broker_ok, "detail": broker_detail},
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }
    down = [name for name, ok in (("database", db_ok), ("broker", broker_ok)) if not ok]
    if down:
        body["down"] = down
    return JsonResponse(body, status=200 if not down else 503)
