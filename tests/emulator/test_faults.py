"""Fault settings and the draw that picks one fault per request (pure)."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from grant_worker.emulator.faults import Fault, FaultSettings


def share_of_faults(settings: FaultSettings, points: int = 1000) -> Counter[Fault]:
    # Midpoints of a regular grid: every share of [0, 1) gets exactly its part of the points.
    return Counter(settings.choose((n + 0.5) / points) for n in range(points))


def test_no_fault_by_default() -> None:
    assert share_of_faults(FaultSettings()) == Counter({Fault.NONE: 1000})


def test_each_rate_is_an_exact_share_of_the_draws() -> None:
    settings = FaultSettings(drop_rate=0.1, error_rate=0.2, commit_lost_rate=0.05, hang_rate=0.01)
    assert share_of_faults(settings) == Counter(
        {Fault.DROP: 100, Fault.ERROR: 200, Fault.COMMIT_LOST: 50, Fault.HANG: 10, Fault.NONE: 640}
    )


def test_rates_adding_up_to_more_than_one_are_refused() -> None:
    with pytest.raises(ValidationError):
        FaultSettings(drop_rate=0.6, error_rate=0.5)


def test_a_rate_above_one_is_refused() -> None:
    with pytest.raises(ValidationError):
        FaultSettings(error_rate=1.5)


def test_an_error_status_outside_5xx_is_refused() -> None:
    with pytest.raises(ValidationError):
        FaultSettings(error_status=429)


def test_updated_changes_only_the_named_settings() -> None:
    settings = FaultSettings(latency_ms=5).updated(error_rate=0.5)
    assert (settings.latency_ms, settings.error_rate) == (5, 0.5)


def test_updated_refuses_unknown_settings() -> None:
    with pytest.raises(ValidationError):
        FaultSettings().updated(eror_rate=0.5)


@pytest.mark.parametrize(("u", "expected_s"), [(0.0, 0.05), (0.5, 0.1), (0.999999, 0.15)])
def test_latency_spreads_uniformly_by_jitter(u: float, expected_s: float) -> None:
    settings = FaultSettings(latency_ms=100, jitter_ms=50)
    assert settings.delay_s(u) == pytest.approx(expected_s, abs=1e-6)


def test_latency_never_goes_negative() -> None:
    assert FaultSettings(latency_ms=10, jitter_ms=50).delay_s(0.0) == 0.0
