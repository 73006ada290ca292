"""The pacing math, pure: what the fleet reads from Auth0's rate-limit headers and what it does.

How the fleet paces itself (`GRANTS_RATE_LIMIT=auto`), in short:

1. Every Management API answer carries the tenant's bucket: `x-ratelimit-limit` (its size L)
   and `x-ratelimit-remaining` (R). The fleet keeps one model of that bucket in Redis: a GCRA
   whose burst is L and whose refill is the learned free rate (`tasks.flow.pace`).
2. Each answer re-synchronises the model: tokens = R - (calls the fleet granted after the
   answered call: they are not counted in R yet) - a small reserve (`reserve_tokens`). So the
   tenant's own count, not a guess, decides how much may go now, whoever else spends from it.
3. The refill rate is learned from the trend of R: over a window, free rate = (our calls +
   ΔR) / Δt (`free_rate`): what the tenant refills minus what other applications spend. It
   only extrapolates between answers, so an error costs little either way. Windows in which
   the bucket was full are skipped (a full bucket hides its refill).
4. `x-ratelimit-reset` is never used for pacing, so it does not matter whether a tenant means
   "next call allowed" or "bucket full". After a 429 the fleet pauses until the reset when it
   is sane (`classify_reset`), else for a backoff of its own; a reset far off sends requests
   back to the queue rather than holding threads.
5. Before the first headers the fleet goes at `START_RATE_PER_S` with a bucket of one (Auth0's
   lowest production rate); without headers at all it creeps up additively and halves on 429.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# Auth0's lowest production Management API rate (free tier): where the fleet starts.
START_RATE_PER_S = 2.0
# Never paced slower than this, whatever a bad estimate says.
MIN_RATE_PER_S = 0.5
# A rate learned above this is a bug in the headers, not a tenant.
MAX_RATE_PER_S = 1000.0
# A trend window ends after at least this long and this many calls (precise enough at 2 req/s).
WINDOW_MIN_S = 1.0
WINDOW_MIN_CALLS = 8
WINDOW_MAX_S = 5.0
# Weight of a new window's estimate against the rate learned so far.
RATE_SMOOTHING = 0.5
# Without any headers: +this per successful call, halved on each 429.
HEADLESS_STEP_PER_S = 0.1
# A reset further ahead than this is nonsense (milliseconds, or a wrong clock).
ABSURD_RESET_AHEAD_S = 3600.0
# A reset value above this is certainly in milliseconds (year 5138 in seconds).
MILLISECONDS_THRESHOLD = 1e11
# The reserve grows by one token per this many of the tenant's bucket size.
RESERVE_PER_LIMIT = 25
# After a 429 without a usable reset, the fleet waits this long on its own.
OWN_BACKOFF_S = 1.0

Mode = Literal["auto", "ceiling", "off"]
ResetKind = Literal["ok", "absent", "past", "too_far", "milliseconds"]


@dataclass(frozen=True)
class Reset:
    """What an `x-ratelimit-reset` value means: `epoch_s` only when `kind` is "ok"."""

    kind: ResetKind
    epoch_s: float | None = None

    @property
    def usable(self) -> bool:
        return self.kind == "ok"


def classify_reset(value: float | None, now_epoch_s: float) -> Reset:
    """Trust a reset only when it is in epoch seconds, in the future and within the hour.

    A value in the past, more than an hour ahead, or in milliseconds is treated as unknown.
    """
    if value is None:
        return Reset("absent")
    if value >= MILLISECONDS_THRESHOLD:
        return Reset("milliseconds")
    if value <= now_epoch_s:
        return Reset("past")
    if value - now_epoch_s > ABSURD_RESET_AHEAD_S:
        return Reset("too_far")
    return Reset("ok", value)


def pause_after_429(
    reset: Reset, retry_after_s: float | None, now_epoch_s: float
) -> tuple[float, bool]:
    """(epoch seconds until which the fleet pauses, whether the server said so).

    `Retry-After` wins; then a usable reset; else the fleet's own short backoff.
    """
    if retry_after_s is not None and 0 <= retry_after_s <= ABSURD_RESET_AHEAD_S:
        return now_epoch_s + retry_after_s, True
    if reset.usable and reset.epoch_s is not None:
        return reset.epoch_s, True
    return now_epoch_s + OWN_BACKOFF_S, False


def reserve_tokens(limit: int) -> int:
    """Tokens the fleet leaves in the tenant's bucket: room for other applications and for
    answers that overtake each other. 1, plus 1 per `RESERVE_PER_LIMIT` of bucket size."""
    return 1 + max(0, limit) // RESERVE_PER_LIMIT


def free_rate(
    calls: int, rejected: int, remaining_start: int, remaining_end: int, dt_s: float
) -> float:
    """The rate the tenant refills for us over a window: (accepted calls + ΔR) / Δt.

    `calls` were granted between the two observed calls, `rejected` of them answered 429 (they
    took no token). Other applications' calls show as a lower R, so they are left out.
    Raises ValueError when `dt_s` is not positive.
    """
    if dt_s <= 0:
        raise ValueError("dt_s must be positive")
    accepted = max(0, calls - rejected)
    return max(0.0, (accepted + remaining_end - remaining_start) / dt_s)


def window_complete(elapsed_s: float, calls: int) -> bool:
    """A trend window is long enough for its estimate to mean something."""
    return elapsed_s >= WINDOW_MAX_S or (elapsed_s >= WINDOW_MIN_S and calls >= WINDOW_MIN_CALLS)


def smoothed_rate(previous: float | None, estimate: float) -> float:
    """The learned rate after a window's `estimate` (the first estimate is taken as it is)."""
    if previous is None:
        new = estimate
    else:
        new = (1 - RATE_SMOOTHING) * previous + RATE_SMOOTHING * estimate
    return min(MAX_RATE_PER_S, max(MIN_RATE_PER_S, new))


def tokens_after_answer(remaining: int, granted_since: int, reserve: int) -> int:
    """Tokens the model may hand out right after an answer showing `remaining`.

    `granted_since`: slots the fleet granted after the answered call's own (not yet in R).
    Negative means the fleet owes the bucket that many before the next call.
    """
    return remaining - max(0, granted_since) - reserve


def headless_rate(previous: float, limited: bool) -> float:
    """Additive increase, multiplicative decrease, for a tenant that sends no headers."""
    new = previous / 2 if limited else previous + HEADLESS_STEP_PER_S
    return min(MAX_RATE_PER_S, max(MIN_RATE_PER_S, new))


def pacing_mode(setting: str | float) -> Mode:
    """GRANTS_RATE_LIMIT as a mode: "auto", a ceiling (a positive number), or "off" (0)."""
    if setting == "auto":
        return "auto"
    return "off" if float(setting) == 0 else "ceiling"


def effective_rate(learned: float | None, ceiling: float | None, *, start: float) -> float:
    """The rate the model refills at: learned (or the start rate), never above a ceiling.

    With a ceiling and nothing learned yet the ceiling itself is used, as before `auto`.
    """
    if learned is None:
        rate = ceiling if ceiling is not None else start
    else:
        rate = learned if ceiling is None else min(learned, ceiling)
    return max(MIN_RATE_PER_S if ceiling is None else min(ceiling, MIN_RATE_PER_S), rate)


def probe_interval_s(failed_probes: int, max_interval_s: float) -> float:
    """Seconds before the next probe of an open breaker: 1, 2, 4, 8 … capped."""
    return min(max_interval_s, float(2 ** max(0, min(failed_probes, 16))))


def parse_count(value: str | None) -> int | None:
    """A rate-limit count header as a non-negative integer; None if absent or nonsense."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0 or number > 1e9:
        return None
    return int(number)
