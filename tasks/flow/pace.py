"""The fleet's pace, shared by every worker process through one Redis hash (`Keys.pace`).

The method is in `tasks.flow.pacing`; the state changes are Lua scripts beside this file
(`lua/`), each atomic, with Redis `TIME` as the one clock:

- `pace_acquire.lua`: a call from a token bucket that models the tenant's, refilled at the
  learned rate and as large as the tenant's bucket; nothing is taken while none is due (the
  caller naps and asks again). Every slot gets a sequence number.
- `pace_observe.lua`: one Management API answer re-synchronises the model to the tenant's own
  count and feeds the trend estimate of the free rate; it also ends the breaker's failure streak.
- `pace_model.lua`: the head both of them start with (the clock, the model's rate and burst).
- `pace_pause.lua`: after Auth0's own 429, every process holds its calls until then.

Fields of the hash, read by `read_pace` (the contract for `grants status` and the
dashboard): `limit`, `remaining` (last headers seen), `rate` (learned free rate, calls/s),
`pause` (epoch µs), `observed_at` (epoch µs); internal: `tokens` at `tok_t` (the model),
`seq`, `obs_seq`, `win_*`.
"""

from __future__ import annotations

import logging
import random as _random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks import metrics
from grant_worker.tasks.flow import pacing
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.ride_along import RideAlong, SetOnce, run_script
from grant_worker.tasks.scripts import register

log = logging.getLogger(__name__)

_US = 1_000_000
# A slot due within this many microseconds is taken (the caller sleeps until it starts).
GRACE_US = 25_000
# Longest nap between two asks for a slot, and its random stretch (0.5: up to +50 %).
POLL_MAX_S = 0.25
POLL_JITTER = 0.5
# How long the learned state outlives the fleet's last call (ms).
IDLE_TTL_MS = 600_000


class BreakerIsOpen(Exception):
    """Raised by `acquire` when the fleet's breaker is open: no call may go now."""


class SlotUnavailable(Exception):
    """Raised by `acquire` when no slot starts before the deadline; `wait_s` is how far off."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"no fleet slot within the deadline (next in {wait_s:.3f} s)")
        self.wait_s = wait_s


@dataclass(frozen=True)
class Slot:
    """A granted slot: its sequence number, when it starts (epoch seconds), how long we slept."""

    seq: int
    at_epoch_s: float
    waited_s: float
    # The `set_once` asked of `acquire`: True made now, False found there; None: not asked.
    set_once: bool | None = None


@dataclass(frozen=True)
class PaceState:
    """What the fleet knows of the tenant's rate limit (None: not known yet)."""

    limit: int | None
    remaining: int | None
    rate: float | None
    pause_until: float | None
    observed_at: float | None

    @property
    def learned(self) -> bool:
        """The fleet has seen the tenant's limit or learned a rate (else: "not learned yet")."""
        return self.limit is not None or self.rate is not None


def read_pace(client: redis.Redis, keys: Keys) -> PaceState:
    """A pure read of the fleet's learned rate state; every field None on a fresh fleet."""
    values = client.hmget(keys.pace, ["limit", "remaining", "rate", "pause", "observed_at"])
    limit, remaining, rate, pause, observed = (_text(v) for v in values)
    return PaceState(
        limit=int(float(limit)) if limit else None,
        remaining=int(float(remaining)) if remaining else None,
        rate=float(rate) if rate else None,
        pause_until=float(pause) / _US if pause else None,
        observed_at=float(observed) / _US if observed else None,
    )


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class FleetPace:
    """The shared pace. Thread-safe (one Redis call per decision)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        mode: pacing.Mode,
        ceiling_per_s: float | None = None,
        ceiling_burst: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.mode = mode
        self._random = random
        self._keys = keys
        self._ceiling = ceiling_per_s if mode == "ceiling" else None
        self._ceiling_burst = ceiling_burst if mode == "ceiling" else None
        self._sleep = sleep
        self._clock = clock
        self._acquire = register(client, __package__, "pace_model.lua", "pace_acquire.lua")
        self._observe = register(client, __package__, "pace_model.lua", "pace_observe.lua")
        self._pause = register(client, __package__, "pace_pause.lua")
        self._unpaced_check = register(client, __package__, "pace_unpaced_check.lua")
        # Pacing off: answers need reporting only while the fleet counts failures in a row.
        self._streak_seen = False
        self._client = client

    def __repr__(self) -> str:
        return f"FleetPace(mode={self.mode!r}, ceiling_per_s={self._ceiling})"

    def _model_args(self) -> list[float | int]:
        return [self._ceiling or 0, self._ceiling_burst or 0, pacing.START_RATE_PER_S, IDLE_TTL_MS]

    def acquire(
        self,
        *,
        max_wait_s: float | None = None,
        later: RideAlong | None = None,
        set_once: SetOnce | None = None,
    ) -> Slot:
        """Wait for a slot and take it, waiting at most `max_wait_s` seconds (None: no limit).

        Nothing is reserved ahead: while no slot is due the caller sleeps a little (at most
        `POLL_MAX_S`, jittered) and asks again, so that a model corrected meanwhile by an
        answer elsewhere counts at once. Raises `SlotUnavailable` (taking nothing) once the
        wait would exceed `max_wait_s`, and `BreakerIsOpen` while the fleet's breaker is open.
        With pacing off only a pause is waited for, and the slot has sequence 0.
        `later`'s writes go ahead of the first ask, in its round trip. `set_once` is made by
        the script that takes the slot, in the same step (with pacing off: not made).
        """
        started = self._clock()
        if self.mode == "off":
            self._wait_out_pause(started, max_wait_s, later)
            return Slot(0, time.time(), self._clock() - started)
        keys = [self._keys.pace, self._keys.breaker]
        args: list[Any] = [*self._model_args(), GRACE_US]
        if set_once is not None:
            keys.append(set_once.key)
            args += [set_once.value, set_once.ttl_s]
        while True:
            taken, slot_us, now_us, seq, paused, made = run_script(
                self._acquire, keys, args, later=later
            )
            if int(taken) < 0:
                raise BreakerIsOpen()
            wait_s = max(0.0, (int(slot_us) - int(now_us)) / _US)
            if int(taken):
                if wait_s > 0:
                    self._sleep(wait_s)
                break
            waited_s = self._clock() - started
            left_s = None if max_wait_s is None else max_wait_s - waited_s
            # A pause ends when it says; the model's wait may shrink with the next answer.
            if left_s is not None and (left_s <= 0 or (int(paused) and wait_s > left_s)):
                raise SlotUnavailable(wait_s)
            nap = min(wait_s, POLL_MAX_S) * (1.0 + POLL_JITTER * self._random())
            self._sleep(nap if left_s is None else min(nap, left_s))
        waited_s = max(0.0, self._clock() - started)
        metrics.PACE_WAIT_SECONDS.observe(waited_s)
        return Slot(
            int(seq),
            int(slot_us) / _US,
            waited_s,
            set_once=None if set_once is None else bool(int(made)),
        )

    def _wait_out_pause(
        self, started: float, max_wait_s: float | None, later: RideAlong | None
    ) -> None:
        keys = [self._keys.pace, self._keys.breaker]
        is_open, pause_us, now_us, streak = run_script(self._unpaced_check, keys, [], later=later)
        if int(is_open):
            raise BreakerIsOpen()
        self._streak_seen = int(streak) > 0
        if int(pause_us) <= int(now_us):
            return
        wait_s = (int(pause_us) - int(now_us)) / _US
        if max_wait_s is not None and wait_s > max_wait_s:
            raise SlotUnavailable(wait_s)
        self._sleep(wait_s)

    def observe(
        self,
        slot_seq: int,
        status: int,
        headers: Mapping[str, str],
        *,
        later: RideAlong | None = None,
    ) -> None:
        """Learn from a Management API answer to the call that held slot `slot_seq`.

        Any answer below 500 also ends the breaker's failure streak (its time is noted, which
        the breaker's scripts read); with pacing off only that is done (and only while a streak
        was seen), the headers recorded, nothing learned.
        With `later`, the lesson rides with the request's next round trip instead of taking one
        of its own."""
        if status >= 500:
            return
        if self.mode == "off":
            if not self._streak_seen:
                return
            slot_seq = 0
        limit = pacing.parse_count(headers.get("x-ratelimit-limit"))
        remaining = pacing.parse_count(headers.get("x-ratelimit-remaining"))
        keys = [self._keys.pace]
        args = [
            *self._model_args(),
            slot_seq,
            "limited" if status == 429 else "ok",
            "" if limit is None else limit,
            "" if remaining is None else remaining,
            *_OBSERVE_CONSTANTS,
        ]
        if later is None:
            _show_learned(self._observe(keys=keys, args=args))
        else:
            later.add(
                "the pace's lesson from an answer",
                lambda pipe: pipe.script(self._observe, keys, args),
                _show_learned,
            )

    def pause_until(self, epoch_s: float, *, later: RideAlong | None = None) -> bool:
        """Hold every process's calls until `epoch_s` (never shortens); True if extended.
        `later`'s writes go ahead, in the same round trip."""
        _, extended = run_script(
            self._pause, [self._keys.pace], [int(epoch_s * _US), IDLE_TTL_MS], later=later
        )
        if int(extended):
            metrics.PACE_PAUSES.inc()
            metrics.FLEET_PAUSE_UNTIL.set(epoch_s)
        return bool(int(extended))

    def paused_until(self) -> float | None:
        """The pause in force (epoch seconds), or None when calls may go now."""
        pause = self._client.hget(self._keys.pace, "pause")
        text = _text(pause)
        if not text:
            return None
        until = float(text) / _US
        return until if until > time.time() else None


# The method's constants (`tasks.flow.pacing`), in the order `lua/pace_observe.lua` reads them.
_OBSERVE_CONSTANTS = (
    int(pacing.WINDOW_MIN_S * _US),
    pacing.WINDOW_MIN_CALLS,
    int(pacing.WINDOW_MAX_S * _US),
    pacing.RATE_SMOOTHING,
    pacing.MIN_RATE_PER_S,
    pacing.MAX_RATE_PER_S,
    pacing.HEADLESS_STEP_PER_S,
    pacing.RESERVE_PER_LIMIT,
)


def _show_learned(result: Any) -> None:
    rate_milli, known_limit, known_remaining, _pause_us, _synced = result
    metrics.FLEET_RATE.set(int(rate_milli) / 1000)
    if int(known_limit) >= 0:
        metrics.TENANT_LIMIT.set(int(known_limit))
    if int(known_remaining) >= 0:
        metrics.TENANT_REMAINING.set(int(known_remaining))


def make_pace(
    settings: Settings, client: redis.Redis, *, sleep: Callable[[float], None] = time.sleep
) -> FleetPace:
    """The pace of GRANTS_RATE_LIMIT (auto | ceiling | 0) on `Keys(prefix).pace`.

    `sleep` is how a caller naps until its slot (a worker's is cut short by SIGTERM)."""
    mode = pacing.pacing_mode(settings.grants_rate_limit)
    ceiling = None if mode != "ceiling" else float(settings.grants_rate_limit)
    return FleetPace(
        client,
        Keys(settings.grants_key_prefix),
        mode=mode,
        ceiling_per_s=ceiling,
        ceiling_burst=settings.grants_rate_burst,
        sleep=sleep,
    )
