"""The fleet's pace and breaker against the real Redis: the Lua scripts' state changes.

Assertions are on the slot times the scripts compute (Redis clock) or on lower bounds of
elapsed time, which a loaded machine can only make larger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from grant_worker.tasks.flow.breaker import Breaker, read_breaker
from grant_worker.tasks.flow.pace import (
    BreakerIsOpen,
    FleetPace,
    Slot,
    SlotUnavailable,
    read_pace,
)
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.ride_along import SetOnce


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def clients(redis_url: str) -> Iterator[list[redis.Redis]]:
    """One connection per simulated worker process."""
    made = [redis.Redis.from_url(redis_url, decode_responses=True) for _ in range(5)]
    yield made
    for client in made:
        client.close()


def ceiling(client: redis.Redis, keys: Keys, rate: float, burst: int) -> FleetPace:
    return FleetPace(client, keys, mode="ceiling", ceiling_per_s=rate, ceiling_burst=burst)


def auto(client: redis.Redis, keys: Keys) -> FleetPace:
    return FleetPace(client, keys, mode="auto")


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def headers(limit: int, remaining: int) -> dict[str, str]:
    return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining)}


def acquire_from_threads(fleet: list[FleetPace], total: int) -> list[Slot]:
    slots: list[Slot] = []
    lock = threading.Lock()
    per_thread = total // len(fleet)

    def work(member: FleetPace) -> None:
        for _ in range(per_thread):
            slot = member.acquire()
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=work, args=(m,)) for m in fleet]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(slots) == total
    return sorted(slots, key=lambda s: s.at_epoch_s)


# -- a ceiling (GRANTS_RATE_LIMIT=20) ------------------------------------------------------------


def test_slots_beyond_the_burst_are_spread_at_the_ceiling(
    clients: list[redis.Redis], keys: Keys
) -> None:
    fleet = [ceiling(c, keys, 20, 5) for c in clients]
    started = time.monotonic()
    slots = acquire_from_threads(fleet, 25)
    # 25 slots, 5 at once, then one per 50 ms: the last at least 1.0 s after the first
    assert slots[-1].at_epoch_s - slots[0].at_epoch_s >= 1.0 - 0.03
    assert time.monotonic() - started >= 1.0 - 0.03


def test_slot_numbers_follow_the_order_of_the_slots(clients: list[redis.Redis], keys: Keys) -> None:
    slots = acquire_from_threads([ceiling(c, keys, 40, 4) for c in clients], 40)
    assert sorted(s.seq for s in slots) == list(range(1, 41))


def test_the_first_burst_goes_without_waiting(clients: list[redis.Redis], keys: Keys) -> None:
    fleet = ceiling(clients[0], keys, 1, 3)
    assert len([fleet.acquire(max_wait_s=0) for _ in range(3)]) == 3
    with pytest.raises(SlotUnavailable) as caught:
        fleet.acquire(max_wait_s=0)
    assert 0 < caught.value.wait_s <= 1.0


def test_a_slot_beyond_the_deadline_is_refused_and_nothing_is_taken(
    clients: list[redis.Redis], keys: Keys
) -> None:
    fleet = ceiling(clients[0], keys, 2, 1)
    fleet.acquire()
    before = clients[0].hget(keys.pace, "seq")
    with pytest.raises(SlotUnavailable):
        fleet.acquire(max_wait_s=0.05)
    assert clients[0].hget(keys.pace, "seq") == before


def test_a_pause_holds_every_process_until_it_ends(clients: list[redis.Redis], keys: Keys) -> None:
    first, other = ceiling(clients[0], keys, 50, 10), ceiling(clients[1], keys, 50, 10)
    until = redis_now(clients[0]) + 0.3
    first.pause_until(until)
    assert other.paused_until() == pytest.approx(until, abs=1e-3)
    other.acquire()
    assert redis_now(clients[1]) >= until - 0.03


def test_a_pause_is_never_shortened(clients: list[redis.Redis], keys: Keys) -> None:
    fleet = ceiling(clients[0], keys, 10, 1)
    later = redis_now(clients[0]) + 5
    assert fleet.pause_until(later)
    assert not fleet.pause_until(later - 4)
    assert fleet.paused_until() == pytest.approx(later, abs=1e-3)


def test_a_pause_longer_than_the_wait_is_refused_at_once(
    clients: list[redis.Redis], keys: Keys
) -> None:
    fleet = ceiling(clients[0], keys, 10, 5)
    fleet.pause_until(redis_now(clients[0]) + 5)
    started = time.monotonic()
    with pytest.raises(SlotUnavailable) as caught:
        fleet.acquire(max_wait_s=1.0)
    assert caught.value.wait_s > 4 and time.monotonic() - started < 0.5


def test_pacing_off_takes_no_state_but_honours_a_pause(
    clients: list[redis.Redis], keys: Keys
) -> None:
    fleet = FleetPace(clients[0], keys, mode="off")
    assert len([fleet.acquire(max_wait_s=0) for _ in range(200)]) == 200
    assert clients[0].exists(keys.pace) == 0
    fleet.pause_until(redis_now(clients[0]) + 5)
    with pytest.raises(SlotUnavailable):
        fleet.acquire(max_wait_s=0)


def test_the_learned_state_expires_when_the_fleet_is_idle(
    clients: list[redis.Redis], keys: Keys
) -> None:
    ceiling(clients[0], keys, 10, 2).acquire()
    assert 0 < clients[0].pttl(keys.pace) <= 600_000


# -- auto: learning from the tenant's headers ----------------------------------------------------


def test_before_any_headers_the_fleet_sends_one_call_at_a_time(
    clients: list[redis.Redis], keys: Keys
) -> None:
    fleet = auto(clients[0], keys)
    fleet.acquire(max_wait_s=0)
    with pytest.raises(SlotUnavailable):
        fleet.acquire(max_wait_s=0)


def test_an_answer_opens_the_tenants_remaining_bucket_minus_calls_in_flight_and_a_reserve(
    clients: list[redis.Redis], keys: Keys
) -> None:
    fleet = auto(clients[0], keys)
    first = fleet.acquire(max_wait_s=0)
    fleet.observe(first.seq, 201, headers(50, 49))
    # 49 remaining, nothing else in flight, reserve 1 + 50 // 25 = 3: 46 may go at once
    assert len([fleet.acquire(max_wait_s=0) for _ in range(46)]) == 46
    with pytest.raises(SlotUnavailable):
        fleet.acquire(max_wait_s=0)
    state = read_pace(clients[0], keys)
    assert (state.limit, state.remaining) == (50, 49)


def test_a_late_answer_does_not_undo_a_newer_one(clients: list[redis.Redis], keys: Keys) -> None:
    fleet = auto(clients[0], keys)
    early = fleet.acquire(max_wait_s=0)
    fleet.observe(early.seq, 201, headers(20, 19))
    late = fleet.acquire(max_wait_s=0)
    newer = fleet.acquire(max_wait_s=0)
    fleet.observe(newer.seq, 201, headers(20, 0))  # others emptied the bucket
    fleet.observe(late.seq, 201, headers(20, 18))  # an older answer arriving late
    with pytest.raises(SlotUnavailable):
        fleet.acquire(max_wait_s=0)


def test_the_free_rate_is_learned_from_the_trend_of_remaining(
    clients: list[redis.Redis], keys: Keys
) -> None:
    fleet = auto(clients[0], keys)
    remaining = 30
    slots = [fleet.acquire(max_wait_s=0)]
    fleet.observe(slots[0].seq, 201, headers(50, remaining))
    started = time.monotonic()
    # 10 calls over ~1.2 s while remaining falls by 4: the tenant refilled 6 in 1.2 s (5/s)
    for n in range(10):
        time.sleep(0.12)
        slot = fleet.acquire(max_wait_s=1)
        fleet.observe(slot.seq, 201, headers(50, remaining - (n + 1) * 4 // 10))
    elapsed = time.monotonic() - started
    learned = read_pace(clients[0], keys).rate
    assert learned is not None
    assert learned == pytest.approx((10 - 4) / elapsed, rel=0.25)


def test_a_429_answer_empties_the_model(clients: list[redis.Redis], keys: Keys) -> None:
    fleet = auto(clients[0], keys)
    slot = fleet.acquire(max_wait_s=0)
    fleet.observe(slot.seq, 201, headers(10, 9))
    slot = fleet.acquire(max_wait_s=0)
    fleet.observe(slot.seq, 429, headers(10, 0))
    with pytest.raises(SlotUnavailable):
        fleet.acquire(max_wait_s=0)


def test_an_open_breaker_refuses_every_slot(clients: list[redis.Redis], keys: Keys) -> None:
    Breaker(clients[0], keys).open("token_refused", "401 access_denied")
    with pytest.raises(BreakerIsOpen):
        auto(clients[1], keys).acquire()


# -- the breaker -----------------------------------------------------------------------------------


def test_a_fresh_fleet_reads_its_breaker_as_closed(clients: list[redis.Redis], keys: Keys) -> None:
    state = read_breaker(clients[0], keys)
    assert (state.state, state.is_open, state.cause) == ("closed", False, None)


def test_the_breaker_opens_once_and_records_cause_since_and_next_probe(
    clients: list[redis.Redis], keys: Keys
) -> None:
    breaker = Breaker(clients[0], keys)
    before = redis_now(clients[0])
    assert breaker.open("insufficient_scope", "403 Insufficient scope")
    assert not Breaker(clients[1], keys).open("token_refused", "another process saw it too")
    state = read_breaker(clients[0], keys)
    assert (state.state, state.cause) == ("open", "insufficient_scope")
    assert state.since is not None and state.since >= before - 0.01
    assert state.next_probe_at == pytest.approx(state.since + 1.0, abs=0.01)


def test_one_probe_per_interval_for_the_whole_fleet_backing_off_to_the_cap(
    clients: list[redis.Redis], keys: Keys
) -> None:
    fleet = [Breaker(c, keys, max_probe_s=2.0) for c in clients]
    fleet[0].open("unreachable", "503")
    assert not any(b.claim_probe() for b in fleet)  # the first probe is 1 s away
    assert [b.claim_probe(now=True) for b in fleet].count(True) == 5  # a file changed: at once
    clients[0].hset(keys.breaker, mapping={"next_probe_at": 0, "probes": 0})
    assert [b.claim_probe() for b in fleet].count(True) == 1
    waits = []
    for probes in (1, 2, 5):
        clients[0].hset(keys.breaker, mapping={"next_probe_at": 0, "probes": probes})
        fleet[0].claim_probe()
        waits.append(read_breaker(clients[0], keys).next_probe_at - redis_now(clients[0]))
    assert waits == pytest.approx([2.0, 2.0, 2.0], abs=0.05)


def test_sustained_failures_across_the_fleet_open_the_breaker(
    clients: list[redis.Redis], keys: Keys
) -> None:
    fleet = [Breaker(c, keys, failures=5, span_s=0.2) for c in clients]
    assert not any(b.note_failure("503") for b in fleet[:4])
    time.sleep(0.25)
    assert fleet[4].note_failure("503 Service Unavailable")
    assert read_breaker(clients[0], keys).cause == "unreachable"


def test_an_answer_in_between_ends_the_failure_streak(
    clients: list[redis.Redis], keys: Keys
) -> None:
    breaker = Breaker(clients[0], keys, failures=3, span_s=0)
    fleet = auto(clients[1], keys)
    breaker.note_failure("503")
    breaker.note_failure("503")
    before = clients[0].hgetall(keys.breaker)
    fleet.observe(fleet.acquire(max_wait_s=0).seq, 201, headers(50, 49))
    # The answer is noted in the pace's own hash, which the breaker reads on its (rare)
    # failures: the hot path writes one hash, not two.
    assert clients[0].hgetall(keys.breaker) == before
    assert not breaker.note_exhausted(2, "budget spent")  # an answer came: not sustained
    assert not breaker.note_failure("503")  # a new streak of one
    assert not read_breaker(clients[0], keys).is_open
    assert not breaker.note_failure("503")
    assert breaker.note_exhausted(2, "budget spent")  # two in a row, no answer: sustained


def test_a_successful_probe_closes_the_breaker_once(clients: list[redis.Redis], keys: Keys) -> None:
    Breaker(clients[0], keys).open("token_rejected", "401")
    assert Breaker(clients[1], keys).close()
    assert not Breaker(clients[2], keys).close()
    assert read_breaker(clients[0], keys).state == "closed"


def test_the_breaker_opens_at_error_and_closes_below_it(
    clients: list[redis.Redis], keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    # The close is a recovery: at ERROR it would fire every error alert a second time.
    breaker = Breaker(clients[0], keys)
    with caplog.at_level("INFO", logger="grant_worker.tasks.flow.breaker"):
        assert breaker.open("unreachable", "503")
        assert breaker.close()
    levels = {
        record.getMessage().split(",")[0].split(" after")[0]: record.levelno
        for record in caplog.records
        if record.name == "grant_worker.tasks.flow.breaker"
    }
    assert levels["circuit breaker OPEN"] == logging.ERROR
    assert logging.INFO <= levels["circuit breaker CLOSED"] < logging.ERROR


def test_the_slot_makes_the_mark_that_must_precede_its_call_only_when_taken(
    clients: list[redis.Redis], keys: Keys, key_prefix: str
) -> None:
    client = clients[0]
    pace = ceiling(client, keys, rate=1000, burst=1)
    mark = SetOnce(f"{key_prefix}mark", "sending", 60)
    assert pace.pause_until(time.time() + 60)
    with pytest.raises(SlotUnavailable):
        pace.acquire(max_wait_s=0.05, set_once=mark)
    assert client.get(mark.key) is None  # no slot, no call: nothing may say one was sent
    client.hdel(keys.pace, "pause")

    first = pace.acquire(max_wait_s=5, set_once=mark)
    again = pace.acquire(max_wait_s=5, set_once=mark)

    assert (first.set_once, again.set_once) == (True, False)  # an earlier mark is kept
    assert client.get(mark.key) == "sending" and 0 < client.ttl(mark.key) <= 60
    assert pace.acquire(max_wait_s=5).set_once is None  # not asked
