"""The tenant-wide token bucket with fake clocks (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from grant_worker.emulator.ratelimit import RateLimitSettings, TokenBucket

EPOCH = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now


def bucket(rate: float, burst: int) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, burst, monotonic=clock.monotonic, wall=clock.wall), clock


def test_a_full_bucket_allows_burst_requests_then_refuses() -> None:
    limiter, _ = bucket(rate=1, burst=3)
    assert [limiter.take().allowed for _ in range(4)] == [True, True, True, False]


def test_remaining_counts_down_to_zero() -> None:
    limiter, _ = bucket(rate=1, burst=3)
    assert [limiter.take().remaining for _ in range(4)] == [2, 1, 0, 0]


def test_tokens_come_back_at_the_rate() -> None:
    limiter, clock = bucket(rate=2, burst=1)
    limiter.take()
    clock.now = 0.4
    assert limiter.take().allowed is False
    clock.now = 0.6
    assert limiter.take().allowed is True


def test_the_bucket_never_holds_more_than_burst() -> None:
    limiter, clock = bucket(rate=10, burst=2)
    clock.now = 100.0
    assert [limiter.take().allowed for _ in range(3)] == [True, True, False]


def test_reset_is_the_epoch_second_the_bucket_is_full_again() -> None:
    limiter, _ = bucket(rate=2, burst=4)
    limiter.take()
    decision = limiter.take()  # 2 tokens missing at 2 per second: full in 1 s
    assert decision.reset_epoch_s == int(EPOCH) + 1


def test_a_refusal_resets_when_the_next_token_arrives_and_says_so_in_retry_after() -> None:
    limiter, _ = bucket(rate=0.25, burst=1)
    limiter.take()
    decision = limiter.take()
    assert (decision.allowed, decision.reset_epoch_s, decision.retry_after_s) == (
        False,
        int(EPOCH) + 4,
        4,
    )


def test_headers_carry_limit_remaining_and_reset() -> None:
    limiter, _ = bucket(rate=1, burst=5)
    assert limiter.take().headers(with_retry_after=True) == {
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "4",
        "x-ratelimit-reset": str(int(EPOCH) + 1),
    }


def test_retry_after_is_sent_only_on_a_refusal_and_only_when_asked() -> None:
    limiter, _ = bucket(rate=1, burst=1)
    limiter.take()
    refusal = limiter.take()
    assert "Retry-After" not in refusal.headers(with_retry_after=False)
    assert refusal.headers(with_retry_after=True)["Retry-After"] == "1"


def test_burst_defaults_to_one_seconds_worth() -> None:
    assert RateLimitSettings(rate_per_s=7.5).bucket_size == 8


def test_a_burst_without_a_rate_is_refused() -> None:
    with pytest.raises(ValidationError):
        RateLimitSettings(burst=5)
