"""Recording streamed calls off the answer's path: one background thread per process writes them in order.

A streamed answer ends (for the client) when the WSGI server sends the closing chunk, which it does only once
the response's iterator is done; recording the call there (a short transaction) would hold the client's last
byte back. So the relay hands the record to this thread and returns. Records are written in submission order
and drained at interpreter exit; one that fails is logged (and a broken connection replaced). The
run's totals stay right when a record lands after its run ended (catalog.gateway.metering sums it again).

`GOLDPATH["GATEWAY_RECORD_IN_BACKGROUND"]` off (the test suite: its database transaction is not visible to
another connection) records in the request thread instead.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Callable

from django.db import connection

from ..conf import goldpath_settings

logger = logging.getLogger(__name__)

_queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
_state = threading.Condition()
_pending = 0
_thread: threading.Thread | None = None


def submit(record: Callable[[], None]) -> None:
    """Record now (setting off) or on the recorder thread."""
    global _pending, _thread
    if not goldpath_settings.GATEWAY_RECORD_IN_BACKGROUND:
        record()
        return
    with _state:
        _pending += 1
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="gateway-recorder", daemon=True)
            _thread.start()
    _queue.put(record)


def _loop() -> None:
    global _pending
    while True:
        record = _queue.get()
        try:
            _run(record)
        finally:
            with _state:
                _pending -= 1
                _state.notify_all()


def _run(record: Callable[[], None]) -> None:
    try:
        record()  # catalog.gateway.upstream._record logs a record it could not write
    except Exception:  # noqa: BLE001 - the thread must go on
        logger.exception("gateway: a model call could not be recorded")
    finally:
        connection.close_if_unusable_or_obsolete()  # a database restart costs one record, not all that follow


def drain(timeout: float = 10.0) -> bool:
    """Wait until every submitted record is written (True) or `timeout` passes (False)."""
    with _state:
        return _state.wait_for(lambda: _pending == 0, timeout=timeout)


atexit.register(drain)
