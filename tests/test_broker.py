"""The embedded broker (portal/broker.py): a worker never reads a message before it is whole."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from queue import Empty

from kombu import Connection

MESSAGES = 150


def _connection(tmp_path, transport: str) -> Connection:
    queue = tmp_path / "queue"
    queue.mkdir()
    return Connection(
        "filesystem://",
        transport=transport,
        transport_options={
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(tmp_path / "processed"),
            "control_folder": str(tmp_path / "control"),
            "staging_folder": str(tmp_path / "staging"),
        },
    )


def _race(conn: Connection) -> tuple[list[int], list[Exception]]:
    """A producer puts large messages while a consumer drains the folder as fast as it can."""
    producer, consumer = conn.default_channel, conn.clone().default_channel
    body = "x" * 400_000
    got: list[int] = []
    errors: list[Exception] = []
    done = threading.Event()

    def produce() -> None:
        for i in range(MESSAGES):
            producer._put("jobs", {"i": i, "body": body})
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    while len(got) + len(errors) < MESSAGES:
        written = done.is_set()
        try:
            got.append(consumer._get("jobs")["i"])
        except Empty:
            if written:  # every message was written before this look, and none is left
                break
        except ValueError as exc:  # a message read before it was written (JSONDecodeError)
            errors.append(exc)
    thread.join()
    return got, errors


def test_every_message_is_read_whole_while_more_are_written(tmp_path):
    conn = _connection(tmp_path, "portal.broker:Transport")
    got, errors = _race(conn)
    assert errors == [] and sorted(got) == list(range(MESSAGES))
    assert list((tmp_path / "staging").iterdir()) == []  # nothing left half-way


def test_the_portal_uses_the_whole_message_transport_for_the_embedded_broker(tmp_path):
    """On the embedded defaults (no CELERY_BROKER_URL) the Celery app's connections use it."""
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "DATABASE_URL")}
    code = (
        "import django; django.setup(); from portal.celery import app; "
        "c = app.connection_for_write(); print(c.transport_cls, type(c.default_channel).__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "GOLDPATH_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["portal.broker:Transport", "portal.broker"]
