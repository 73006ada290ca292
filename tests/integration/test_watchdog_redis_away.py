"""The watchdog tells "Redis is away" from "this worker is stuck while Redis answers" (a real
Redis, a clock of the test's own: a round trip that took 40 s is Redis having been away)."""

from __future__ import annotations

from typing import Any

import redis

from grant_worker.tasks.keys import Keys
from grant_worker.worker.process.intake_bridge import LIVENESS_S
from grant_worker.worker.process.watchdog import Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowRedis:
    """The real client, but LLEN takes `stall_s` of the test's clock once."""

    def __init__(self, client: redis.Redis, clock: Clock) -> None:
        self._client = client
        self._clock = clock
        self.stall_s = 0.0

    def llen(self, key: str) -> int:
        self._clock.now += self.stall_s
        self.stall_s = 0.0
        return int(self._client.llen(key))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _watchdog(client: Any, key_prefix: str, clock: Clock, stalls: list[str]) -> Watchdog:
    return Watchdog(
        client,
        Keys(key_prefix),
        queue=f"{key_prefix}queue",
        capacity=4,
        hostname="away@test",
        interval_s=2.0,
        stall_after_s=60.0,
        on_stall=lambda: stalls.append("exit"),
        bridge_alive=lambda: False,  # blocked on Redis as long as Redis was
        bridge_window_s=LIVENESS_S,
        clock=clock,
    )


def test_a_bridge_blocked_while_redis_was_away_is_given_its_window_from_redis_return(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    clock = Clock()
    slow = SlowRedis(redis_client, clock)
    stalls: list[str] = []
    watchdog = _watchdog(slow, key_prefix, clock, stalls)
    clock.now += LIVENESS_S + 1  # Redis answered all along: the bridge is long overdue ...
    slow.stall_s = 45.0  # ... but this round trip says Redis was away for 45 s
    assert not watchdog.check() and stalls == []
    clock.now += LIVENESS_S - 1
    assert not watchdog.check() and stalls == []
    clock.now += 2
    assert watchdog.check() and stalls == ["exit"], "stuck while Redis answers: exit"


def test_a_bridge_stuck_while_redis_answers_ends_the_worker(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    clock = Clock()
    stalls: list[str] = []
    watchdog = _watchdog(SlowRedis(redis_client, clock), key_prefix, clock, stalls)
    clock.now += LIVENESS_S + 1
    assert watchdog.check() and stalls == ["exit"]
