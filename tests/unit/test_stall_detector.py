"""The watchdog calls a worker stalled only when work waited while it had room, long enough."""

from __future__ import annotations

from grant_worker.worker.process.watchdog import StallDetector


def observe(detector: StallDetector, now: float, **state: int | float) -> bool:
    values = {"queued": 5, "busy": 0, "capacity": 4, "last_taken": 0.0}
    values.update(state)
    return detector.observe(now=now, **values)  # type: ignore[arg-type]


def test_a_backlog_with_room_and_nothing_taken_for_long_enough_is_a_stall() -> None:
    detector = StallDetector(stall_after_s=30)
    assert not observe(detector, 10)
    assert not observe(detector, 30)
    assert observe(detector, 40)


def test_an_empty_queue_is_never_a_stall() -> None:
    detector = StallDetector(stall_after_s=30)
    assert not any(observe(detector, t, queued=0) for t in range(0, 200, 5))


def test_a_busy_worker_is_not_stalled_by_a_backlog() -> None:
    detector = StallDetector(stall_after_s=30)
    assert not any(observe(detector, t, busy=4) for t in range(0, 200, 5))


def test_taking_a_message_starts_the_clock_again() -> None:
    detector = StallDetector(stall_after_s=30)
    observe(detector, 10)
    assert not observe(detector, 35, last_taken=34.5)
    assert not observe(detector, 60, last_taken=34.5)
    assert not observe(detector, 85, last_taken=34.5)
    assert observe(detector, 90, last_taken=34.5)


def test_a_backlog_that_clears_resets_the_detector() -> None:
    detector = StallDetector(stall_after_s=30)
    observe(detector, 10)
    observe(detector, 25, queued=0)
    assert not observe(detector, 41)
