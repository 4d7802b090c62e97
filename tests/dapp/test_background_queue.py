"""The engine's background queue is bounded in bytes as well as in jobs."""

from __future__ import annotations

import threading

from dapp.engine import _BackgroundWorker


def test_jobs_beyond_the_byte_budget_are_dropped_and_counted() -> None:
    release = threading.Event()
    ran: list[int] = []
    worker = _BackgroundWorker(maxsize=100, max_bytes=1000)
    try:
        worker.submit(release.wait, 0)                 # occupies the thread
        worker.submit(lambda: ran.append(1), 600)
        worker.submit(lambda: ran.append(2), 600)      # 1200 > 1000 bytes: dropped
        worker.submit(lambda: ran.append(3), 400)      # fits exactly
        assert worker.dropped == 1 and worker.queued_bytes == 1000
        release.set()
        worker.wait_idle()
        assert ran == [1, 3] and worker.queued_bytes == 0
        worker.submit(lambda: ran.append(4), 900)      # room again once the queue drained
        worker.wait_idle()
        assert ran == [1, 3, 4] and worker.dropped == 1
    finally:
        release.set()
        worker.stop()
