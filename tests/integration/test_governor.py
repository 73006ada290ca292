"""The shared rate governor against the real Redis: spacing, pauses, deadlines, off switch.

Assertions are on the slot times the Lua script computes (Redis clock, microseconds) or on
lower bounds of elapsed time, which a loaded machine can only make larger.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from grant_worker.tasks.flow.governor import Governor, Slot, SlotUnavailable
from grant_worker.tasks.keys import Keys


@pytest.fixture
def key(key_prefix: str) -> str:
    return Keys(key_prefix).governor


@pytest.fixture
def clients(redis_url: str) -> Iterator[list[redis.Redis]]:
    """One connection per simulated worker process."""
    made = [redis.Redis.from_url(redis_url) for _ in range(5)]
    yield made
    for client in made:
        client.close()


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def acquire_from_threads(governors: list[Governor], total: int) -> list[Slot]:
    slots: list[Slot] = []
    lock = threading.Lock()
    per_thread = total // len(governors)

    def work(governor: Governor) -> None:
        for _ in range(per_thread):
            slot = governor.acquire()
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=work, args=(g,)) for g in governors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(slots) == total
    return sorted(slots, key=lambda s: s.at_epoch_s)


def test_slots_beyond_the_burst_are_spread_at_the_configured_rate(
    clients: list[redis.Redis], key: str
) -> None:
    governors = [Governor(c, key, rate_per_s=20, burst=5) for c in clients]
    started = time.monotonic()
    slots = acquire_from_threads(governors, 25)
    elapsed = time.monotonic() - started
    # 25 slots, 5 at once, then one per 50 ms: the last is at least 1.0 s after the first
    assert slots[-1].at_epoch_s - slots[0].at_epoch_s >= 1.0 - 1e-6
    assert elapsed >= 1.0 - 0.01


def test_no_window_holds_more_than_the_burst_plus_the_rate(
    clients: list[redis.Redis], key: str
) -> None:
    governors = [Governor(c, key, rate_per_s=40, burst=4) for c in clients]
    times = [s.at_epoch_s for s in acquire_from_threads(governors, 40)]
    window_s = 0.25
    for start in times:
        inside = [t for t in times if start <= t < start + window_s - 1e-6]
        assert len(inside) <= 4 + 40 * window_s


def test_the_first_burst_goes_without_waiting(clients: list[redis.Redis], key: str) -> None:
    governor = Governor(clients[0], key, rate_per_s=1, burst=3)
    slots = [governor.acquire(max_wait_s=0) for _ in range(3)]
    assert len(slots) == 3
    with pytest.raises(SlotUnavailable) as caught:
        governor.acquire(max_wait_s=0)
    assert 0 < caught.value.wait_s <= 1.0


def test_a_slot_beyond_the_deadline_is_refused_and_not_taken(
    clients: list[redis.Redis], key: str
) -> None:
    governor = Governor(clients[0], key, rate_per_s=2, burst=1)
    governor.acquire()
    before = clients[0].hget(key, "tat")
    with pytest.raises(SlotUnavailable):
        governor.acquire(max_wait_s=0.05)
    assert clients[0].hget(key, "tat") == before


def test_a_pause_holds_every_process_until_the_reset(clients: list[redis.Redis], key: str) -> None:
    first = Governor(clients[0], key, rate_per_s=50, burst=10)
    other = Governor(clients[1], key, rate_per_s=50, burst=10)
    until = redis_now(clients[0]) + 0.3
    first.pause_until(until)
    assert other.paused_until() == pytest.approx(until, abs=1e-5)
    slot = other.acquire()
    assert slot.at_epoch_s >= until - 1e-6
    assert redis_now(clients[1]) >= until - 1e-3


def test_after_a_pause_the_fleet_resumes_at_the_sustained_rate_not_in_a_burst(
    clients: list[redis.Redis], key: str
) -> None:
    governor = Governor(clients[0], key, rate_per_s=20, burst=10)
    until = redis_now(clients[0]) + 0.1
    governor.pause_until(until)
    slots = [governor.acquire().at_epoch_s for _ in range(3)]
    assert slots[1] - slots[0] >= 0.05 - 1e-6
    assert slots[2] - slots[1] >= 0.05 - 1e-6


def test_a_pause_is_never_shortened_by_an_earlier_reset(
    clients: list[redis.Redis], key: str
) -> None:
    governor = Governor(clients[0], key, rate_per_s=10, burst=1)
    later = redis_now(clients[0]) + 5
    governor.pause_until(later)
    governor.pause_until(later - 4)
    assert governor.paused_until() == pytest.approx(later, abs=1e-5)


def test_a_pause_longer_than_the_deadline_refuses_the_slot(
    clients: list[redis.Redis], key: str
) -> None:
    governor = Governor(clients[0], key, rate_per_s=10, burst=5)
    governor.pause_until(redis_now(clients[0]) + 5)
    with pytest.raises(SlotUnavailable) as caught:
        governor.acquire(max_wait_s=0.1)
    assert caught.value.wait_s > 4


def test_rate_zero_turns_the_ceiling_off(clients: list[redis.Redis], key: str) -> None:
    governor = Governor(clients[0], key, rate_per_s=0, burst=1)
    slots = [governor.acquire(max_wait_s=0) for _ in range(200)]
    assert len(slots) == 200
    assert clients[0].exists(key) == 0


def test_rate_zero_still_honours_a_fleet_pause(clients: list[redis.Redis], key: str) -> None:
    governor = Governor(clients[0], key, rate_per_s=0, burst=1)
    governor.pause_until(redis_now(clients[0]) + 5)
    with pytest.raises(SlotUnavailable):
        governor.acquire(max_wait_s=0)


def test_the_governor_state_expires_when_the_fleet_is_idle(
    clients: list[redis.Redis], key: str
) -> None:
    Governor(clients[0], key, rate_per_s=10, burst=2).acquire()
    ttl_ms = clients[0].pttl(key)
    assert 0 < ttl_ms <= 61_000


def test_a_governor_needs_a_sane_rate_and_burst(clients: list[redis.Redis], key: str) -> None:
    with pytest.raises(ValueError):
        Governor(clients[0], key, rate_per_s=-1, burst=1)
    with pytest.raises(ValueError):
        Governor(clients[0], key, rate_per_s=1, burst=0)
