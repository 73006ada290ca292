"""Once the worker is stopping, a request about to wait goes back to the queue instead."""

from __future__ import annotations

import threading
import time

import pytest

from grant_worker.tasks.delivery.shutdown import ShutdownSignal
from grant_worker.tasks.errors import ReturnToQueue


def test_a_backoff_sleeps_as_asked_while_the_worker_runs() -> None:
    signal = ShutdownSignal()
    started = time.monotonic()
    signal.sleep(0.05)
    assert time.monotonic() - started >= 0.05


def test_a_backoff_in_progress_is_cut_short_by_the_shutdown() -> None:
    signal = ShutdownSignal()
    threading.Timer(0.05, signal.begin).start()
    started = time.monotonic()
    with pytest.raises(ReturnToQueue):
        signal.sleep(30)
    assert time.monotonic() - started < 5


def test_nothing_begins_waiting_once_the_shutdown_has_begun() -> None:
    signal = ShutdownSignal()
    signal.begin()
    with pytest.raises(ReturnToQueue):
        signal.check()
    with pytest.raises(ReturnToQueue):
        signal.sleep(0)
