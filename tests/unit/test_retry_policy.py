"""The retry policy: pure wait computation and the budgeted loop, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from grant_worker.tasks.errors import (
    BadRequest,
    Forbidden,
    GrantConflict,
    NetworkError,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamError,
)
from grant_worker.tasks.flow.retry_policy import (
    Budget,
    RetryPolicy,
    backoff_s,
    call_with_retries,
    parse_reset_epoch,
    parse_retry_after,
    rate_limit_wait_s,
    should_retry,
    wait_s,
)

NOW = 1_800_000_000.0
POLICY = RetryPolicy(
    budget_s=30.0,
    backoff_initial_s=0.5,
    backoff_max_s=4.0,
    backoff_multiplier=2.0,
    backoff_jitter_ratio=0.2,
    rate_limit_jitter_s=0.3,
    max_rate_limit_wait_s=20.0,
)


def low() -> float:
    return 0.0


def high() -> float:
    return 0.999999


def mid() -> float:
    return 0.5


def limited(*, retry_after_s: float | None = None, reset: float | None = None) -> RateLimited:
    return RateLimited("429", retry_after_s=retry_after_s, reset_at_epoch_s=reset)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# -- which errors are retried --------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [limited(), UpstreamError("503", http_status=503), NetworkError("reset", ambiguous=True)],
)
def test_rate_limits_upstream_and_network_errors_are_retried(error: Exception) -> None:
    assert should_retry(error)


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("400"),
        Unauthorized("401"),
        Forbidden("403"),
        NotFound("404"),
        GrantConflict("409"),
    ],
)
def test_client_errors_including_409_are_never_retried(error: Exception) -> None:
    assert not should_retry(error)


# -- backoff ---------------------------------------------------------------------------------


def test_backoff_doubles_from_the_initial_wait_without_jitter_at_the_midpoint() -> None:
    assert [backoff_s(POLICY, n, mid) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_backoff_is_capped_at_the_maximum_even_with_upward_jitter() -> None:
    assert backoff_s(POLICY, 10, mid) == 4.0
    assert backoff_s(POLICY, 10, high) == 4.0


def test_backoff_jitter_stays_within_the_configured_ratio() -> None:
    assert backoff_s(POLICY, 2, low) == pytest.approx(0.8)
    assert backoff_s(POLICY, 2, high) == pytest.approx(1.2, abs=1e-5)


def test_server_errors_and_network_errors_back_off_exponentially() -> None:
    upstream = UpstreamError("500", http_status=500)
    network = NetworkError("timed out", ambiguous=True)
    assert wait_s(POLICY, upstream, 3, NOW, mid) == 2.0
    assert wait_s(POLICY, network, 1, NOW, mid) == 0.5


def test_a_503_with_retry_after_waits_at_least_that_long() -> None:
    error = UpstreamError("503", http_status=503, retry_after_s=3.0)
    assert wait_s(POLICY, error, 1, NOW, mid) == 3.0


# -- 429 -------------------------------------------------------------------------------------


def test_a_429_waits_until_the_rate_limit_reset_in_the_future() -> None:
    assert wait_s(POLICY, limited(reset=NOW + 5), 1, NOW, low) == 5.0


def test_a_429_whose_reset_is_already_past_waits_only_the_jitter() -> None:
    assert wait_s(POLICY, limited(reset=NOW - 10), 1, NOW, low) == 0.0
    assert wait_s(POLICY, limited(reset=NOW - 10), 1, NOW, high) == pytest.approx(0.3, abs=1e-5)


def test_retry_after_wins_over_the_rate_limit_reset() -> None:
    error = limited(retry_after_s=2.0, reset=NOW + 9)
    assert wait_s(POLICY, error, 1, NOW, low) == 2.0


def test_rate_limit_jitter_is_added_after_the_reset_within_its_bound() -> None:
    waits = [rate_limit_wait_s(POLICY, limited(reset=NOW + 1), NOW, r) for r in (low, mid, high)]
    assert waits[0] == 1.0
    assert all(1.0 <= w <= 1.3 for w in waits)
    assert waits == sorted(waits)


def test_a_429_wait_is_capped_whatever_the_server_says() -> None:
    assert wait_s(POLICY, limited(reset=NOW + 3600), 1, NOW, mid) == 20.0
    assert wait_s(POLICY, limited(retry_after_s=900.0), 1, NOW, mid) == 20.0


def test_a_429_without_any_timing_header_backs_off_exponentially() -> None:
    assert rate_limit_wait_s(POLICY, limited(), NOW, mid) is None
    assert wait_s(POLICY, limited(), 2, NOW, mid) == 1.0


# -- header parsing ----------------------------------------------------------------------------


def test_retry_after_in_seconds_is_read_as_seconds() -> None:
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 1.5 ", NOW) == 1.5


def test_retry_after_as_an_http_date_is_read_relative_to_now() -> None:
    moment = datetime.fromtimestamp(NOW + 12, tz=UTC)
    assert parse_retry_after(format_datetime(moment, usegmt=True), NOW) == 12.0


def test_retry_after_as_a_past_http_date_means_now() -> None:
    moment = datetime.fromtimestamp(NOW - 60, tz=UTC)
    assert parse_retry_after(format_datetime(moment, usegmt=True), NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "Tue, 99 Foo 2026"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_negative_retry_after_means_now() -> None:
    assert parse_retry_after("-3", NOW) == 0.0


def test_rate_limit_reset_is_read_as_epoch_seconds() -> None:
    assert parse_reset_epoch("1655086415") == 1655086415.0


@pytest.mark.parametrize("value", [None, "", "later", "0", "-5"])
def test_unreadable_rate_limit_reset_is_ignored(value: str | None) -> None:
    assert parse_reset_epoch(value) is None


# -- the policy as data --------------------------------------------------------------------------


def test_the_policy_takes_its_budget_from_the_settings() -> None:
    from grant_worker.config.settings import Settings

    settings = Settings(auth0_domain="tenant.example.com", grants_retry_budget_s=12.5)
    assert RetryPolicy.from_settings(settings).budget_s == 12.5


@pytest.mark.parametrize(
    "bad",
    [
        {"budget_s": 0},
        {"budget_s": 1, "backoff_initial_s": 5, "backoff_max_s": 1},
        {"budget_s": 1, "backoff_multiplier": 0.5},
        {"budget_s": 1, "backoff_jitter_ratio": 1.0},
    ],
)
def test_an_inconsistent_policy_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


# -- the budgeted loop ---------------------------------------------------------------------------


def run(policy: RetryPolicy, fake: FakeTime, outcomes: list[object]) -> tuple[object, int]:
    calls = 0

    def call() -> object:
        nonlocal calls
        calls += 1
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    budget = Budget.starting_now(policy.budget_s, fake.clock)
    result = call_with_retries(
        call, policy=policy, budget=budget, sleep=fake.sleep, epoch_clock=lambda: NOW, random=mid
    )
    return result, calls


def test_the_loop_returns_the_first_success_after_retryable_errors() -> None:
    fake = FakeTime()
    outcomes: list[object] = [UpstreamError("502", http_status=502), limited(reset=NOW + 2), "ok"]
    assert run(POLICY, fake, outcomes) == ("ok", 3)
    assert fake.sleeps == [0.5, 2.15]


def test_the_loop_raises_a_final_error_at_once_without_waiting() -> None:
    fake = FakeTime()
    with pytest.raises(GrantConflict):
        run(POLICY, fake, [GrantConflict("409"), "never"])
    assert fake.sleeps == []


def test_the_loop_stops_when_the_next_wait_would_pass_the_budget_and_raises_the_last_error() -> (
    None
):
    fake = FakeTime()
    policy = RetryPolicy(
        budget_s=3.0, backoff_initial_s=1.0, backoff_max_s=8.0, backoff_jitter_ratio=0
    )
    errors = [NetworkError(f"attempt {n}", ambiguous=False) for n in range(1, 10)]
    with pytest.raises(NetworkError, match="attempt 3"):
        run(policy, fake, list(errors))
    # waits 1 + 2 = 3 fit the budget; the next (4) would not
    assert fake.sleeps == [1.0, 2.0]


def test_the_loop_does_not_sleep_through_a_reset_beyond_the_budget() -> None:
    fake = FakeTime()
    policy = RetryPolicy(budget_s=5.0, rate_limit_jitter_s=0)
    with pytest.raises(RateLimited):
        run(policy, fake, [limited(reset=NOW + 10), "never"])
    assert fake.sleeps == []


def test_the_budget_is_shared_by_consecutive_loops() -> None:
    fake = FakeTime()
    policy = RetryPolicy(budget_s=2.0, backoff_initial_s=1.5, backoff_jitter_ratio=0)
    budget = Budget.starting_now(policy.budget_s, fake.clock)
    fake.now += 1.0  # an earlier call of the same request used half of it
    errors: list[Exception] = [UpstreamError("500", http_status=500)]

    def call() -> str:
        raise errors[0]

    with pytest.raises(UpstreamError):
        call_with_retries(call, policy=policy, budget=budget, sleep=fake.sleep, random=mid)
    assert fake.sleeps == []
    assert budget.remaining_s() == 1.0
