"""The fleet's own ceiling on Auth0 calls per second, shared by every worker process via Redis.

A GCRA (generic cell rate algorithm: a token bucket kept as one timestamp) in one Lua script on
one hash (`Keys.governor`), with Redis `TIME` as the clock so that every process agrees:

- `tat` is the bucket's "theoretical arrival time"; each acquisition advances it by the emission
  interval `1 / rate` and is given the slot `max(now, pause, tat - burst * interval)`. So at most
  `burst` calls go at once, then one every interval: with rate 20/s and burst 5, 25 slots span
  at least (25 - 5) / 20 = 1.0 s.
- A slot is reserved only if it starts within the caller's deadline; otherwise nothing is taken
  and `SlotUnavailable` says how long it would have been.
- `pause_until(epoch_s)` (after a 429) holds every process until then and lets them resume at
  the sustained rate, not in one burst, so the fleet does not stampede at the reset second.

`acquire()` sleeps the computed wait (no spinning) and returns the slot. With rate 0 the
ceiling is off, but a pause set after a 429 is still honoured by every process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks import metrics
from grant_worker.tasks.keys import Keys

_US = 1_000_000
# How long the governor's hash outlives its last use (ms), so an idle fleet leaves no state.
_IDLE_TTL_MS = 60_000

# KEYS[1] the hash; ARGV interval_us, burst, max_wait_us (-1: no limit).
# Returns {reserved (1/0), slot_us, now_us}. Microsecond integers fit a Lua double exactly.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local tat = tonumber(state[1]) or 0
local pause = tonumber(state[2]) or 0
local slot = math.max(now, pause)
local new_tat = tat
if interval > 0 then
  new_tat = math.max(tat, now) + interval
  slot = math.max(slot, new_tat - burst * interval)
end
if max_wait >= 0 and slot - now > max_wait then
  return {0, slot, now}
end
if interval > 0 then
  redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', new_tat))
  local horizon = math.max(new_tat, pause) - now
  redis.call('PEXPIRE', KEYS[1], math.floor(horizon / 1000) + tonumber(ARGV[4]))
end
return {1, slot, now}
"""

# KEYS[1] the hash; ARGV until_us, interval_us, burst. Returns the pause in force (us).
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_us = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local tat = tonumber(state[1]) or 0
local pause = math.max(tonumber(state[2]) or 0, until_us)
redis.call('HSET', KEYS[1], 'pause', string.format('%.0f', pause))
if interval > 0 then
  -- resume at the sustained rate: the first slot at `pause`, the next one interval later
  local resume_tat = pause + (burst - 1) * interval
  if resume_tat > tat then
    redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', resume_tat))
    tat = resume_tat
  end
end
local horizon = math.max(tat, pause) - now
redis.call('PEXPIRE', KEYS[1], math.max(0, math.floor(horizon / 1000)) + tonumber(ARGV[4]))
return pause
"""

# KEYS[1] the hash. Returns {pause_us, now_us}.
_PAUSED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = tonumber(redis.call('HGET', KEYS[1], 'pause')) or 0
return {pause, now}
"""


class SlotUnavailable(Exception):
    """Raised by `acquire` when no slot starts before the deadline; `wait_s` is how far off."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"no rate-governor slot within the deadline (next in {wait_s:.3f} s)")
        self.wait_s = wait_s


@dataclass(frozen=True)
class Slot:
    """A granted slot: when it starts (Redis clock, epoch seconds) and how long we slept."""

    at_epoch_s: float
    waited_s: float


class Governor:
    """A token bucket shared through Redis. Thread-safe (one Redis call per decision)."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        rate_per_s: float,
        burst: int,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s < 0 or burst < 1:
            raise ValueError("need rate_per_s >= 0 and burst >= 1")
        self._key = key
        self._interval_us = round(_US / rate_per_s) if rate_per_s > 0 else 0
        self._burst = burst
        self._sleep = sleep
        self._clock = clock
        self._acquire = client.register_script(_ACQUIRE)
        self._pause = client.register_script(_PAUSE)
        self._paused = client.register_script(_PAUSED)

    def __repr__(self) -> str:
        rate = _US / self._interval_us if self._interval_us else 0
        return f"Governor(key={self._key!r}, rate_per_s={rate:g}, burst={self._burst})"

    def acquire(self, *, max_wait_s: float | None = None) -> Slot:
        """Wait for a slot and take it, waiting at most `max_wait_s` seconds (None: no limit).

        Raises `SlotUnavailable` (taking nothing) when the slot would start later than that.
        """
        started = self._clock()
        deadline = None if max_wait_s is None else started + max(0.0, max_wait_s)
        while True:
            max_wait_us = -1
            if deadline is not None:
                max_wait_us = max(0, int((deadline - self._clock()) * _US))
            reserved, slot_us, now_us = self._acquire(
                keys=[self._key], args=[self._interval_us, self._burst, max_wait_us, _IDLE_TTL_MS]
            )
            wait_s = (int(slot_us) - int(now_us)) / _US
            if not reserved:
                raise SlotUnavailable(wait_s)
            if wait_s <= 0:
                break
            self._sleep(wait_s)
            # A 429 elsewhere may have paused the fleet while we slept: honour it.
            pause_us, now_us = self._paused(keys=[self._key])
            if int(pause_us) <= int(now_us):
                break
        waited_s = max(0.0, self._clock() - started)
        metrics.GOVERNOR_WAIT_SECONDS.observe(waited_s)
        return Slot(at_epoch_s=int(slot_us) / _US, waited_s=waited_s)

    def pause_until(self, epoch_s: float) -> None:
        """Hold every process's acquisitions until `epoch_s` (Redis clock); never shortens."""
        self._pause(
            keys=[self._key],
            args=[int(epoch_s * _US), self._interval_us, self._burst, _IDLE_TTL_MS],
        )
        metrics.GOVERNOR_PAUSES.inc()

    def paused_until(self) -> float | None:
        """The pause in force (epoch seconds), or None when calls may go now."""
        pause_us, now_us = self._paused(keys=[self._key])
        return int(pause_us) / _US if int(pause_us) > int(now_us) else None


def make_governor(settings: Settings, client: redis.Redis) -> Governor:
    """The governor of GRANTS_RATE_LIMIT / GRANTS_RATE_BURST on `Keys(prefix).governor`."""
    return Governor(
        client,
        Keys(settings.grants_key_prefix).governor,
        rate_per_s=settings.grants_rate_limit,
        burst=settings.grants_rate_burst,
    )
