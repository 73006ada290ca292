"""Hard conditions over HTTP: rate limit, latency, 5xx, drops, lost replies, hangs."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from grant_worker.emulator.config import EmulatorConfig
from grant_worker.emulator.faults import FaultSettings
from grant_worker.emulator.testing import RunningEmulator, running_emulator
from tests.emulator.helpers import Api, fetch_token

API = "https://api.example.com/"
TOO_MANY = {
    "statusCode": 429,
    "error": "Too Many Requests",
    "message": "Global limit has been reached",
    "errorCode": "too_many_requests",
}


def wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    """Poll until `predicate()` is true; fails the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# -- rate limit -------------------------------------------------------------------------------


def test_rate_limit_headers_are_sent_even_when_no_limit_is_configured(api: Api) -> None:
    # Real tenants always have a limit; without one configured it is a generous one.
    headers = api.list().headers
    assert int(headers["x-ratelimit-limit"]) >= 1000
    assert int(headers["x-ratelimit-remaining"]) == int(headers["x-ratelimit-limit"]) - 1


def test_every_limited_reply_carries_the_three_rate_limit_headers(
    emu: RunningEmulator, api: Api
) -> None:
    emu.admin.set_rate_limit(1, 10)
    responses = [api.list(), api.create({"audience": "bad"}), api.get("cgr_x")]
    for response in responses:
        assert response.headers["x-ratelimit-limit"] == "10"
        assert int(response.headers["x-ratelimit-reset"]) >= int(time.time())
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["9", "8", "7"]


def test_an_empty_bucket_gives_auth0s_429_without_retry_after(
    emu: RunningEmulator, api: Api
) -> None:
    emu.admin.set_rate_limit(0.001, 2)  # refills once in 1000 s: stays empty
    statuses = [api.list().status_code for _ in range(2)]
    refused = api.list()
    assert (statuses, refused.status_code) == ([200, 200], 429)
    assert refused.json() == TOO_MANY
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert "Retry-After" not in refused.headers
    assert emu.admin.stats()["rate_limited"] == 1


def test_retry_after_is_sent_when_asked(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_rate_limit(0.001, 1, retry_after=True)
    api.list()
    assert int(api.list().headers["Retry-After"]) >= 1


def test_a_refused_create_stores_nothing(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_rate_limit(0.001, 1)
    api.list()
    assert api.create({"client_id": "svc-00001", "audience": API}).status_code == 429
    assert emu.admin.grants() == []


def test_the_token_endpoint_is_not_limited_by_default(emu: RunningEmulator) -> None:
    emu.admin.set_rate_limit(0.001, 1)
    fetch_token(emu)
    fetch_token(emu)  # raises on a 429


def test_the_limit_can_be_lifted_at_run_time(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_rate_limit(0.001, 1)
    api.list()
    emu.admin.set_rate_limit(None, None)
    assert api.list().status_code == 200


def test_a_limit_from_the_config_is_in_force_from_the_start() -> None:
    config = EmulatorConfig.model_validate({"rate_limit": {"rate_per_s": 0.001, "burst": 1}})
    with running_emulator(config) as emu:
        api = Api(emu, fetch_token(emu))
        assert [api.list().status_code for _ in range(2)] == [200, 429]


# -- latency ----------------------------------------------------------------------------------


def test_latency_delays_the_reply_by_at_least_its_value(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_faults(latency_ms=200)
    started = time.monotonic()
    api.list()
    assert time.monotonic() - started >= 0.2


def test_requests_in_flight_during_latency_are_counted(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_faults(latency_ms=1000)
    barrier = threading.Barrier(8)

    def call() -> None:
        session = requests.Session()
        session.headers.update(api.session.headers)
        barrier.wait()
        session.get(api.base, timeout=10)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert emu.admin.stats()["max_in_flight"] == 8


# -- faults -----------------------------------------------------------------------------------


def test_an_error_fault_answers_5xx_and_stores_nothing(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_faults(error_rate=1.0, error_status=502)
    response = api.create({"client_id": "svc-00001", "audience": API})
    assert response.status_code == 502
    assert response.json() == {"statusCode": 502, "error": "Bad Gateway", "message": "Bad Gateway"}
    emu.admin.set_faults(error_rate=0.0)
    assert emu.admin.grants() == []
    assert emu.admin.stats()["injected_errors"] == 1


def test_a_drop_fault_closes_the_connection_without_a_reply(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        api.create({"client_id": "svc-00001", "audience": API})
    assert emu.admin.grants() == []
    stats = emu.admin.stats()
    assert (stats["dropped"], stats["requests_by_status"]) == (1, {})


def test_a_lost_reply_stores_the_grant_and_answers_5xx(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_faults(commit_lost_rate=1.0)
    response = api.create({"client_id": "svc-00001", "audience": API})
    assert response.status_code == 503
    assert [g["client_id"] for g in emu.admin.grants()] == ["svc-00001"]


def test_a_lost_reply_can_be_a_dropped_connection_instead(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_faults(commit_lost_rate=1.0, commit_lost_reply="drop")
    with pytest.raises(requests.ConnectionError):
        api.create({"client_id": "svc-00001", "audience": API})
    assert [g["client_id"] for g in emu.admin.grants()] == ["svc-00001"]
    assert emu.admin.stats()["commit_lost"] == 1


def test_a_retry_after_a_lost_reply_meets_409(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_faults(commit_lost_rate=1.0)
    api.create({"client_id": "svc-00001", "audience": API})
    emu.admin.set_faults(commit_lost_rate=0.0)
    assert api.create({"client_id": "svc-00001", "audience": API}).status_code == 409
    assert emu.admin.stats()["posts_by_grant_key"] == {f"svc-00001|{API}|client": 2}


def test_a_hang_outlasts_the_client_timeout_then_the_grant_is_stored(
    emu: RunningEmulator, api: Api
) -> None:
    emu.admin.set_faults(hang_rate=1.0, hang_s=1.0)
    with pytest.raises(requests.ReadTimeout):
        api.session.post(api.base, json={"client_id": "svc-00001", "audience": API}, timeout=0.2)
    assert emu.admin.stats()["hung"] == 1
    wait_for(lambda: len(emu.admin.grants()) == 1)


def test_faults_spare_the_token_endpoint_by_default(emu: RunningEmulator) -> None:
    emu.admin.set_faults(error_rate=1.0)
    fetch_token(emu)  # raises on a 5xx


def test_faults_reach_the_token_endpoint_when_asked(emu: RunningEmulator) -> None:
    emu.admin.set_faults(error_rate=1.0, apply_to_token_endpoint=True)
    with pytest.raises(requests.HTTPError):
        fetch_token(emu)


def test_faults_never_touch_the_admin_api(emu: RunningEmulator) -> None:
    emu.admin.set_faults(drop_rate=1.0)
    emu.admin.set_rate_limit(0.001, 1)
    assert [emu.admin.stats()["requests_total"] for _ in range(3)] == [0, 0, 0]


def test_faults_from_the_config_are_in_force_from_the_start() -> None:
    with running_emulator(EmulatorConfig(faults=FaultSettings(error_rate=1.0))) as emu:
        assert Api(emu, fetch_token(emu)).list().status_code == 503


def test_a_fault_rate_is_a_share_of_the_requests_with_a_seeded_emulator() -> None:
    config = EmulatorConfig(faults=FaultSettings(error_rate=0.5), random_seed=7)
    with running_emulator(config) as emu:
        api = Api(emu, fetch_token(emu))
        statuses = [api.list().status_code for _ in range(200)]
    assert 60 <= statuses.count(503) <= 140
    assert set(statuses) == {200, 503}


def test_the_token_endpoint_can_be_limited_too_with_an_oauth_shaped_429() -> None:
    config = EmulatorConfig.model_validate(
        {"rate_limit": {"rate_per_s": 0.001, "burst": 1, "apply_to_token_endpoint": True}}
    )
    with running_emulator(config) as emu:
        fetch_token(emu)
        with pytest.raises(requests.HTTPError) as caught:
            fetch_token(emu)
    assert caught.value.response.status_code == 429
    assert caught.value.response.json() == {
        "error": "too_many_requests",
        "error_description": "Global limit has been reached",
    }
