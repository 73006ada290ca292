"""One tenant-wide token bucket, like Auth0's Management API limit (pure, injectable clocks).

The bucket holds at most `burst` tokens and refills at `rate_per_s`; every limited request
takes one, and an empty bucket means 429. Headers, as Auth0 sends them on every Management
API reply, as real tenants send them:

- `x-ratelimit-limit`: the bucket size (`burst`);
- `x-ratelimit-remaining`: whole tokens left after this request;
- `x-ratelimit-reset`: epoch seconds (rounded up); Auth0 only says "when the limit resets", so
  both readings are offered (`reset_semantics`): `full`, when the bucket is full again, and
  `next`, when one more call is allowed (now, while tokens remain);
- `Retry-After` (seconds, rounded up): only on 429 and only when `retry_after` is set, since
  Auth0 does not document it.

With no rate given the tenant still has a limit, a generous one (`UNLIMITED_RATE_PER_S`), so
headers are always there. `TIERS` are Auth0's published Management API limits.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TOO_MANY_REQUESTS_BODY = {
    "statusCode": 429,
    "error": "Too Many Requests",
    "message": "Global limit has been reached",
    "errorCode": "too_many_requests",
}


# /oauth/token errors are OAuth-shaped; the wording of its 429 is [inferred].
TOO_MANY_REQUESTS_OAUTH_BODY = {
    "error": "too_many_requests",
    "error_description": "Global limit has been reached",
}


# A tenant "without" a limit: one too high to reach from one machine, headers still sent.
UNLIMITED_RATE_PER_S = 10_000.0

# Auth0's published tiers: (sustained requests/s, burst).
TIERS: dict[str, tuple[float, int]] = {
    "free": (2.0, 10),
    "self-service": (16.0, 50),
    "enterprise": (50.0, 50),
    "enterprise-plus": (100.0, 100),
}

ResetSemantics = Literal["full", "next"]


class RateLimitSettings(BaseModel):
    """`rate_per_s` None means no practical limit (a bucket of `UNLIMITED_RATE_PER_S`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    retry_after: bool = False
    # Auth0 limits /oauth/token separately; by default it is not counted here.
    apply_to_token_endpoint: bool = False
    reset_semantics: ResetSemantics = "full"
    # A tenant (or a proxy) that sends nonsense in x-ratelimit-reset: far in the future, in
    # milliseconds, or in the past. For testing clients; None sends the real value.
    absurd_reset: Literal["far", "milliseconds", "past"] | None = None

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> RateLimitSettings:
        if self.burst is not None and self.rate_per_s is None:
            raise ValueError("burst needs rate_per_s")
        return self

    @property
    def bucket_size(self) -> int:
        """`burst`, or one second's worth of requests when not given."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.rate_per_s or 1))


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch_s: int
    retry_after_s: int | None  # set on a refusal

    def headers(self, with_retry_after: bool, absurd_reset: str | None = None) -> dict[str, str]:
        headers = {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(absurd(self.reset_epoch_s, absurd_reset)),
        }
        if with_retry_after and self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


def absurd(reset_epoch_s: int, how: str | None) -> int:
    """`reset_epoch_s` distorted as a broken tenant would send it (`how` None: unchanged)."""
    if how == "far":
        return 9_999_999_999
    if how == "milliseconds":
        return reset_epoch_s * 1000
    if how == "past":
        return reset_epoch_s - 3600
    return reset_epoch_s


class TokenBucket:
    """A thread-safe token bucket, starting full.

    `monotonic` (seconds) measures refill; `wall` (epoch seconds) dates the reset header.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        reset_semantics: ResetSemantics = "full",
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._monotonic = monotonic
        self._wall = wall
        self._tokens = float(burst)
        self._updated = monotonic()
        self._lock = threading.Lock()
        self.reset_semantics = reset_semantics

    def take(self) -> RateDecision:
        """Take one token if there is one."""
        with self._lock:
            now = self._monotonic()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
            self._updated = now
            wall = self._wall()
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            to_full_s = (self.burst - self._tokens) / self.rate_per_s
            to_next_s = max(0.0, (1.0 - self._tokens) / self.rate_per_s)
            reset_in_s = to_full_s if self.reset_semantics == "full" else to_next_s
            if allowed:
                return RateDecision(
                    True, self.burst, math.floor(self._tokens), math.ceil(wall + reset_in_s), None
                )
            return RateDecision(
                False, self.burst, 0, math.ceil(wall + reset_in_s), max(1, math.ceil(to_next_s))
            )


def make_bucket(settings: RateLimitSettings) -> TokenBucket:
    """The bucket for `settings` (a generous one when no rate is given)."""
    if settings.rate_per_s is None:
        rate, size = UNLIMITED_RATE_PER_S, int(UNLIMITED_RATE_PER_S)
    else:
        rate, size = settings.rate_per_s, settings.bucket_size
    return TokenBucket(rate, size, reset_semantics=settings.reset_semantics)
