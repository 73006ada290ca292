"""The retry policy as data, the pure wait computation, and the tenacity loop built from them.

What is retried, and how long it waits (every function below is pure unless it says otherwise):

| error                                 | retried | wait before the next attempt             |
|---------------------------------------|---------|------------------------------------------|
| `RateLimited` (429)                   | yes     | until `Retry-After`, else until          |
|                                       |         | `x-ratelimit-reset` (capped), plus       |
|                                       |         | 0..`rate_limit_jitter_s`                 |
| `UpstreamError` (5xx, 408),           | yes     | exponential backoff with jitter (at      |
| `NetworkError`                        |         | least a 503's `Retry-After`)             |
| 400, 401 (after the one token         | never   | -                                        |
| refresh), 403, 404, 409               |         |                                          |

The official Python SDK retries 409 twice; we never do: a 409 is resolved by a lookup.
All attempts of one request share one budget (`budget_s`): the loop stops as soon as the next
wait would end past the deadline, and raises the last `Auth0Error` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

from grant_worker.tasks.errors import RateLimited, RetryableError

if TYPE_CHECKING:
    from grant_worker.config.settings import Settings

T = TypeVar("T")

# A uniform random number in [0, 1); injectable so that tests pin the jitter.
Random = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How one request retries. Durations in seconds."""

    # Time one request may spend on all its calls and waits (GRANTS_RETRY_BUDGET_S).
    budget_s: float
    # Backoff after 5xx / 408 / network errors: initial * multiplier**(n-1), capped at max,
    # then scaled by a random factor in [1 - jitter_ratio, 1 + jitter_ratio] (never above max).
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 8.0
    backoff_multiplier: float = 2.0
    backoff_jitter_ratio: float = 0.25
    # Added (0..this) after a 429's reset so that a fleet does not wake in the same instant.
    rate_limit_jitter_s: float = 0.25
    # Cap on one wait after a 429, whatever the server says (a bogus reset must not park us).
    max_rate_limit_wait_s: float = 60.0
    # How often a 409 whose grant cannot be found (deleted meanwhile) leads to a new create.
    max_conflict_recreates: int = 2

    def __post_init__(self) -> None:
        if self.budget_s <= 0:
            raise ValueError("budget_s must be positive")
        if self.backoff_initial_s < 0 or self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("need 0 <= backoff_initial_s <= backoff_max_s")
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be at least 1")
        if not 0 <= self.backoff_jitter_ratio < 1:
            raise ValueError("backoff_jitter_ratio must be in [0, 1)")
        if self.rate_limit_jitter_s < 0 or self.max_rate_limit_wait_s < 0:
            raise ValueError("rate-limit waits must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(budget_s=settings.grants_retry_budget_s)


def should_retry(exc: BaseException) -> bool:
    """True for errors worth another attempt (429, 5xx, 408, network); never 4xx otherwise."""
    return isinstance(exc, RetryableError)


def backoff_s(policy: RetryPolicy, retry_number: int, random: Random) -> float:
    """Seconds to wait before retry `retry_number` (1 = the first) after a 5xx/network error."""
    exponent = max(retry_number, 1) - 1
    base = min(policy.backoff_max_s, policy.backoff_initial_s * policy.backoff_multiplier**exponent)
    factor = 1.0 + policy.backoff_jitter_ratio * (2.0 * random() - 1.0)
    return min(policy.backoff_max_s, base * factor)


def rate_limit_wait_s(
    policy: RetryPolicy, exc: RateLimited, now_epoch_s: float, random: Random
) -> float | None:
    """Seconds until the server said to come back (+ jitter, capped), or None if it did not say.

    `Retry-After` wins over `x-ratelimit-reset` (as in every official SDK); a reset already in
    the past means "now" (+ jitter).
    """
    if exc.retry_after_s is not None:
        until_s = max(0.0, exc.retry_after_s)
    elif exc.reset_at_epoch_s is not None:
        until_s = max(0.0, exc.reset_at_epoch_s - now_epoch_s)
    else:
        return None
    jitter = policy.rate_limit_jitter_s * random()
    return min(policy.max_rate_limit_wait_s, until_s + jitter)


def wait_s(
    policy: RetryPolicy,
    exc: BaseException,
    retry_number: int,
    now_epoch_s: float,
    random: Random,
) -> float:
    """Seconds to wait after `exc` before retry `retry_number` (1 = the first retry)."""
    if isinstance(exc, RateLimited):
        told = rate_limit_wait_s(policy, exc, now_epoch_s, random)
        return told if told is not None else backoff_s(policy, retry_number, random)
    wait = backoff_s(policy, retry_number, random)
    if isinstance(exc, RetryableError) and exc.retry_after_s is not None:
        # A 503 may say when to come back: not sooner than that (capped like a 429).
        wait = max(wait, min(policy.max_rate_limit_wait_s, exc.retry_after_s))
    return wait


def parse_retry_after(value: str | None, now_epoch_s: float) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP-date; None if unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is not a wait
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, moment.timestamp() - now_epoch_s)


def parse_reset_epoch(value: str | None) -> float | None:
    """`x-ratelimit-reset` (UNIX epoch seconds) as a float; None if absent or unreadable."""
    if value is None:
        return None
    try:
        epoch = float(value.strip())
    except ValueError:
        return None
    return epoch if epoch == epoch and epoch > 0 else None


@dataclass
class Budget:
    """The one deadline shared by every call of one request (monotonic clock seconds).

    Waiting is never failing: time spent waiting for the fleet (a slot, a 429 pause, an open
    breaker) is given back with `extend`, so the budget only measures retrying bad answers.
    """

    deadline: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def starting_now(cls, budget_s: float, clock: Callable[[], float] = time.monotonic) -> Budget:
        return cls(deadline=clock() + budget_s, clock=clock)

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def allows_wait(self, seconds: float) -> bool:
        """True when sleeping `seconds` still ends inside the budget."""
        return self.clock() + seconds <= self.deadline

    def extend(self, seconds: float) -> None:
        """Move the deadline `seconds` later (time spent waiting, not retrying)."""
        self.deadline += max(0.0, seconds)


def call_with_retries(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    budget: Budget,
    sleep: Callable[[float], None] = time.sleep,
    epoch_clock: Callable[[], float] = time.time,
    random: Random,
    on_retry: Callable[[BaseException, float], None] | None = None,
    fleet_paces_429: bool = False,
) -> T:
    """Run `call` until it returns, raises a final error, or the budget has no room to wait.

    Raises the last exception `call` raised (never tenacity's `RetryError`). `on_retry` sees
    each retryable error and the wait chosen, just before the sleep. `fleet_paces_429`: a 429
    has paused the whole fleet, and the next attempt waits for that pause when it takes its
    slot (uncounted), so here it only waits its jitter.
    """

    def wait(state: RetryCallState) -> float:
        exc = _exception(state)
        if fleet_paces_429 and isinstance(exc, RateLimited):
            return policy.rate_limit_jitter_s * random()
        return wait_s(policy, exc, state.attempt_number, epoch_clock(), random)

    def stop(state: RetryCallState) -> bool:
        return not budget.allows_wait(state.upcoming_sleep)

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry(_exception(state), state.upcoming_sleep)

    retrying = Retrying(
        retry=retry_if_exception(should_retry),
        wait=wait,
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(call)


def _exception(state: RetryCallState) -> BaseException:
    assert state.outcome is not None and state.outcome.failed
    exc = state.outcome.exception()
    assert exc is not None
    return exc
