"""The worker's "shutting down" signal, as the work sees it.

Once a worker has been asked to stop (SIGTERM), nothing should start waiting: a request about to
sleep (a backoff, a pause) or not yet begun goes back to the queue at once (`ReturnToQueue`),
for another worker to take, instead of holding the shutdown up. Calls already sent are left to
finish within the grace (`worker.process.shutdown`).
"""

from __future__ import annotations

import threading

from grant_worker.tasks.errors import ReturnToQueue


class ShutdownSignal:
    def __init__(self) -> None:
        self._event = threading.Event()

    def begin(self) -> None:
        self._event.set()

    @property
    def started(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `ReturnToQueue` once the worker is shutting down."""
        if self._event.is_set():
            raise ReturnToQueue("the worker is shutting down")

    def sleep(self, seconds: float) -> None:
        """`time.sleep`, cut short by the shutdown with `ReturnToQueue`."""
        self.check()
        if self._event.wait(max(0.0, seconds)):
            raise ReturnToQueue("the worker is shutting down")


# One per process: the signal handler and the request handlers' threads share it.
SHUTDOWN = ShutdownSignal()
