"""Celery queue lengths read from the broker at scrape time.

The embedded file-system broker keeps one file per waiting message in its queue folder (`<id>.<queue>.msg`,
see portal/broker.py); Redis keeps a list per queue (and per priority step), summed by kombu's channel. A broker
that cannot be read gives no sample for that queue: a scrape never fails because the broker is down.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings

log = logging.getLogger(__name__)

QUEUES = ("default", "provisioning", "agents", "reports")
TIMEOUT_S = 2.0


def queue_lengths(queues: tuple[str, ...] = QUEUES) -> dict[str, int]:
    try:
        if settings.CELERY_BROKER_URL.startswith("filesystem"):
            return _folder_lengths(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"], queues)
        return _channel_lengths(queues)
    except Exception as exc:  # noqa: BLE001 - any broker failure: no samples, and a log line
        log.warning("metrics: cannot read the broker's queue lengths: %s", exc)
        return {}


def _folder_lengths(folder: str, queues: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(queues, 0)
    with os.scandir(folder) as entries:
        for entry in entries:
            parts = entry.name.rsplit(".", 2)  # <monotonic ms>_<uuid>.<queue>.msg
            if len(parts) == 3 and parts[2] == "msg" and parts[1] in counts:
                counts[parts[1]] += 1
    return counts


def _channel_lengths(queues: tuple[str, ...]) -> dict[str, int]:
    from celery import current_app as app  # the host's Celery app (the plug-in never names the host)

    options = {
        **(app.conf.broker_transport_options or {}),
        "socket_timeout": TIMEOUT_S,
        "socket_connect_timeout": TIMEOUT_S,
    }
    counts: dict[str, int] = {}
    with app.connection_for_read(connect_timeout=TIMEOUT_S, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0)
        channel = conn.default_channel
        for queue in queues:
            try:
                counts[queue] = int(channel._size(queue))  # kombu: LLEN summed over the queue's priority lists
            except Exception as exc:  # noqa: BLE001 - this queue unreadable: no sample for it
                log.warning("metrics: cannot read the length of queue %s: %s", queue, exc)
    return counts
