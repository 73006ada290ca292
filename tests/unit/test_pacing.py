"""The pacing math: what the fleet reads from rate-limit headers and what it does (pure)."""

from __future__ import annotations

import pytest

from grant_worker.tasks.errors import (
    BadRequest,
    Forbidden,
    NetworkError,
    NotFound,
    Unauthorized,
    UpstreamError,
)
from grant_worker.tasks.flow import pacing
from grant_worker.tasks.flow.breaker import is_outage_error, tenant_fault

NOW = 1_800_000_000.0


# -- x-ratelimit-reset ------------------------------------------------------------------------


def test_a_reset_in_the_next_hour_is_trusted() -> None:
    assert pacing.classify_reset(NOW + 3, NOW) == pacing.Reset("ok", NOW + 3)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "absent"),
        (NOW - 5, "past"),
        (NOW, "past"),
        (NOW + 3601, "too_far"),
        (9_999_999_999.0, "too_far"),
        ((NOW + 3) * 1000, "milliseconds"),
    ],
)
def test_a_reset_in_the_past_too_far_or_in_milliseconds_is_unknown(
    value: float | None, kind: str
) -> None:
    reset = pacing.classify_reset(value, NOW)
    assert reset.kind == kind
    assert not reset.usable and reset.epoch_s is None


def test_after_a_429_the_fleet_pauses_until_a_sane_reset() -> None:
    assert pacing.pause_after_429(pacing.Reset("ok", NOW + 2), None, NOW) == (NOW + 2, True)


def test_retry_after_wins_over_the_reset() -> None:
    assert pacing.pause_after_429(pacing.Reset("ok", NOW + 9), 1.5, NOW) == (NOW + 1.5, True)


@pytest.mark.parametrize("kind", ["absent", "past", "too_far", "milliseconds"])
def test_without_a_usable_reset_the_fleet_backs_off_on_its_own_schedule(kind: str) -> None:
    until, told = pacing.pause_after_429(pacing.Reset(kind), None, NOW)  # type: ignore[arg-type]
    assert (until, told) == (NOW + pacing.OWN_BACKOFF_S, False)


def test_an_absurd_retry_after_is_ignored_like_an_absurd_reset() -> None:
    until, told = pacing.pause_after_429(pacing.Reset("absent"), 10_000_000.0, NOW)
    assert not told and until == NOW + pacing.OWN_BACKOFF_S


# -- learning the rate ------------------------------------------------------------------------


def test_the_free_rate_is_accepted_calls_plus_the_change_in_remaining_over_time() -> None:
    # 20 calls in 2 s while remaining went from 10 to 6: the tenant refilled 16, i.e. 8/s
    assert pacing.free_rate(20, 0, 10, 6, 2.0) == pytest.approx(8.0)


def test_other_applications_spending_the_bucket_lower_the_free_rate() -> None:
    # the tenant refills 20/s; neighbours spend 8/s: remaining falls by 8 per second more
    alone = pacing.free_rate(20, 0, 10, 10, 1.0)
    with_neighbours = pacing.free_rate(20, 0, 10, 2, 1.0)
    assert (alone, with_neighbours) == (20.0, 12.0)


def test_calls_answered_429_took_no_token_and_do_not_count() -> None:
    assert pacing.free_rate(10, 4, 0, 0, 1.0) == pytest.approx(6.0)


def test_a_window_needs_a_second_and_enough_calls_or_five_seconds() -> None:
    assert not pacing.window_complete(0.5, 100)
    assert not pacing.window_complete(1.5, 3)
    assert pacing.window_complete(1.0, pacing.WINDOW_MIN_CALLS)
    assert pacing.window_complete(pacing.WINDOW_MAX_S, 1)


def test_the_first_estimate_is_taken_as_it_is_then_smoothed() -> None:
    assert pacing.smoothed_rate(None, 16.0) == 16.0
    assert pacing.smoothed_rate(16.0, 8.0) == pytest.approx(12.0)


def test_the_learned_rate_stays_within_sane_bounds() -> None:
    assert pacing.smoothed_rate(None, 0.0) == pacing.MIN_RATE_PER_S
    assert pacing.smoothed_rate(None, 1e9) == pacing.MAX_RATE_PER_S


def test_tokens_after_an_answer_leave_out_calls_in_flight_and_a_reserve() -> None:
    # 12 remaining, 5 calls sent after the answered one (not in the count yet), reserve 2
    assert pacing.tokens_after_answer(12, 5, 2) == 5
    assert pacing.tokens_after_answer(0, 3, 1) == -4  # after a 429 the fleet owes tokens


def test_the_reserve_grows_with_the_bucket() -> None:
    assert [pacing.reserve_tokens(n) for n in (10, 50, 100)] == [1, 3, 5]


def test_without_headers_the_rate_creeps_up_and_halves_on_429() -> None:
    rate = pacing.START_RATE_PER_S
    for _ in range(10):
        rate = pacing.headless_rate(rate, limited=False)
    assert rate == pytest.approx(pacing.START_RATE_PER_S + 10 * pacing.HEADLESS_STEP_PER_S)
    assert pacing.headless_rate(rate, limited=True) == pytest.approx(rate / 2)


# -- the setting ------------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "mode"), [("auto", "auto"), (0, "off"), (20.0, "ceiling")])
def test_grants_rate_limit_is_auto_off_or_a_ceiling(setting: str | float, mode: str) -> None:
    assert pacing.pacing_mode(setting) == mode


def test_a_ceiling_caps_the_learned_rate_and_stands_in_before_anything_is_learned() -> None:
    assert pacing.effective_rate(None, None, start=2.0) == 2.0
    assert pacing.effective_rate(None, 20.0, start=2.0) == 20.0
    assert pacing.effective_rate(50.0, 20.0, start=2.0) == 20.0
    assert pacing.effective_rate(16.0, None, start=2.0) == 16.0


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("50", 50), (" 7 ", 7), ("0", 0), (None, None), ("", None), ("-1", None), ("nan", None)],
)
def test_count_headers_are_read_as_non_negative_integers(
    value: str | None, parsed: int | None
) -> None:
    assert pacing.parse_count(value) == parsed


# -- the breaker ------------------------------------------------------------------------------


def test_probes_back_off_from_one_second_to_the_cap() -> None:
    waits = [pacing.probe_interval_s(n, 10.0) for n in range(6)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def named(error: Exception, endpoint: str) -> Exception:
    error.endpoint = endpoint  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (named(Unauthorized("401 access_denied", http_status=401), "token"), "token_refused"),
        (named(Forbidden("403 unauthorized_client", http_status=403), "token"), "token_refused"),
        (
            named(Unauthorized("401 Invalid token", http_status=401), "create_grant"),
            "token_rejected",
        ),
        (
            named(
                Forbidden("403", http_status=403, auth0_error_code="insufficient_scope"),
                "create_grant",
            ),
            "insufficient_scope",
        ),
    ],
)
def test_tenant_faults_name_their_cause(error: Exception, cause: str) -> None:
    assert tenant_fault(error) == cause  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        named(BadRequest("400", http_status=400), "create_grant"),
        named(NotFound("404", http_status=404), "create_grant"),
        named(Forbidden("403 third party", http_status=403), "create_grant"),
        named(UpstreamError("503", http_status=503), "create_grant"),
        named(NetworkError("dropped", ambiguous=True), "create_grant"),
    ],
)
def test_faults_of_one_request_are_not_tenant_faults(error: Exception) -> None:
    assert tenant_fault(error) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (UpstreamError("503", http_status=503), True),
        (NetworkError("could not connect", ambiguous=False), True),
        (UpstreamError("408", http_status=408, ambiguous=False), False),
        (UpstreamError("the answer is not a client grant"), False),
        (BadRequest("400", http_status=400), False),
    ],
)
def test_only_5xx_and_network_errors_count_towards_an_outage(
    error: Exception, outage: bool
) -> None:
    assert is_outage_error(error) is outage  # type: ignore[arg-type]
