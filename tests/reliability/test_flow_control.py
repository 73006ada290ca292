"""Tenant-aware flow control with real worker processes, a real Redis and the emulator over HTTP:
a backlog far beyond the budget, an outage, credential faults, nonsensical reset headers.

Tests that change the tenant's secret, tokens or scopes run on an emulator of their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from grant_worker.config.settings import Settings
from grant_worker.emulator.testing import RunningEmulator, running_emulator
from grant_worker.tasks.flow.breaker import read_breaker
from grant_worker.tasks.keys import Keys
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import make_settings, next_client_id
from tests.local_redis import free_port
from tests.reliability.checks import assert_exactly_one_outcome_each, grant_duplicates

API = "https://api.example.com/"
TOKEN_ROUTE = "POST /oauth/token"


def new_requests(count: int) -> list[dict[str, Any]]:
    return [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(count)]


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def breaker_lines(workers: list[WorkerProcess], word: str) -> int:
    return sum(w.log().count(f"circuit breaker {word}") for w in workers)


@pytest.fixture
def own_emulator() -> Iterator[RunningEmulator]:
    with running_emulator() as emu:
        yield emu


@pytest.fixture
def own_settings(
    own_emulator: RunningEmulator, key_prefix: str, queue_name: str, redis_url: str
) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        overrides.setdefault("redis_url", redis_url)
        overrides.setdefault("grants_rate_limit", "auto")
        return make_settings(own_emulator, key_prefix, queue_name, **overrides)

    return build


# -- waiting is never failing -------------------------------------------------------------------


# Both workers run under the same host name, as two `grants worker` on one machine do without
# --hostname: neither may take the other's heartbeat for its own dead past life and put its
# messages back while they run, which would end some of the 500 as `poison`.
@pytest.mark.slow
def test_a_backlog_far_beyond_the_budget_is_all_created_at_the_tenants_pace(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
    figures: Callable[..., None],
) -> None:
    # 500 requests at 5 req/s take 100 s; each may retry for 10 s only
    emulator.admin.set_rate_limit(5, 5)
    settings = settings_factory(
        grants_rate_limit="auto", grants_concurrency=64, grants_retry_budget_s=10.0
    )
    workers = [start_worker(settings), start_worker(settings)]
    with GrantClient(settings) as client:
        started = time.monotonic()
        ids = client.submit_many(new_requests(500))
        list(client.wait_many(ids, timeout_s=240))
        seconds = time.monotonic() - started
    outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    statuses = [o.status for o in outcomes.values()]
    assert statuses.count("created") == 500, [o.error for o in outcomes.values() if o.error][:3]
    assert redis_client.xlen(client.keys.dead) == 0
    # Neither took the other for dead: no message was put back while it ran.
    assert not any("stopped beating" in worker.log() for worker in workers)
    stats = emulator.admin.stats()
    figures(
        requests=500,
        created=500,
        failed=0,
        seconds=round(seconds, 1),
        tenant_429s=stats["rate_limited"],
    )


@pytest.mark.parametrize("absurd", ["far", "milliseconds", "past"])
def test_nonsensical_reset_headers_fail_nothing_and_are_logged(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
    absurd: str,
) -> None:
    # Pacing off, so that the tenant's 429s (and their resets) certainly come.
    emulator.admin.set_rate_limit(10, 5, absurd_reset=absurd)
    settings = settings_factory(grants_rate_limit=0, grants_concurrency=8, grants_retry_budget_s=3)
    worker = start_worker(settings)
    with GrantClient(settings) as client:
        ids = client.submit_many(new_requests(40))
        outcomes = list(client.wait_many(ids, timeout_s=90))
    assert {o.status for o in outcomes} == {"created"}
    assert emulator.admin.stats()["rate_limited"] > 0
    assert redis_client.xlen(client.keys.dead) == 0
    assert "treated as unknown" in worker.log()


# -- the breaker --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_an_outage_twice_the_budget_dead_letters_nothing_and_drains_on_return(
    own_emulator: RunningEmulator,
    own_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    figures: Callable[..., None],
    mode: str,
) -> None:
    settings = own_settings(grants_retry_budget_s=2.0, grants_concurrency=8)
    fleet = [start_worker(settings), start_worker(settings)]
    with GrantClient(settings) as client:
        own_emulator.admin.start_outage(4.0, mode)
        ids = client.submit_many(new_requests(40))
        wait_until(lambda: own_emulator.admin.settings()["outage_left_s"] == 0, 10)
        back = time.monotonic()
        list(client.wait_many(ids, timeout_s=15))
        drained_s = time.monotonic() - back
    outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    assert {o.status for o in outcomes.values()} <= {"created", "exists"}
    assert redis_client.xlen(client.keys.dead) == 0
    assert grant_duplicates(own_emulator.admin.grants()) == {}
    assert breaker_lines(fleet, "OPEN") == 1 and breaker_lines(fleet, "CLOSED") == 1
    figures(mode=mode, requests=40, dead_letters=0, drained_after_return_s=round(drained_s, 1))


def test_a_tenant_unreachable_at_start_starts_the_worker_with_the_breaker_open(
    own_emulator: RunningEmulator,
    own_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    own_emulator.admin.start_outage(4.0, "error")
    settings = own_settings()
    start_worker(settings)
    breaker = read_breaker(redis_client, Keys(key_prefix))
    assert (breaker.state, breaker.cause) == ("open", "unreachable")
    with GrantClient(settings) as client:
        ids = client.submit_many(new_requests(5))
        outcomes = list(client.wait_many(ids, timeout_s=20))
    assert {o.status for o in outcomes} == {"created"}


def test_a_rotated_secret_pauses_the_fleet_until_the_secret_file_is_updated(
    own_emulator: RunningEmulator,
    own_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    key_prefix: str,
    queue_name: str,
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    secret_file = tmp_path / "client_secret"
    secret_file.write_text(own_emulator.client_secret + "\n")
    metrics_port = free_port()
    settings = own_settings(
        auth0_client_secret=None,
        auth0_client_secret_file=str(secret_file),
        grants_stall_after_s=2.0,
    )
    fleet = [
        start_worker(settings, extra_env={"GRANTS_METRICS_PORT": str(metrics_port)}),
        start_worker(settings),
    ]
    admin = own_emulator.admin
    with GrantClient(settings) as client:
        warm = client.submit_many(new_requests(4))
        list(client.wait_many(warm, timeout_s=20))
        admin.rotate_secret("rotated-secret")
        admin.revoke_tokens()  # the cached tokens die too: the fleet needs the new secret
        ids = client.submit_many(new_requests(30))
        wait_until(lambda: read_breaker(redis_client, Keys(key_prefix)).is_open, 10)
        time.sleep(1.0)
        tokens_before = admin.stats()["requests_by_route"].get(TOKEN_ROUTE, 0)
        time.sleep(4.0)
        token_requests = admin.stats()["requests_by_route"].get(TOKEN_ROUTE, 0) - tokens_before
        breaker = read_breaker(redis_client, Keys(key_prefix))
        assert (breaker.state, breaker.cause) == ("open", "token_refused")
        assert all(client.outcome(rid) is None for rid in ids)
        assert redis_client.xlen(client.keys.dead) == 0
        assert redis_client.llen(queue_name) == 30  # stays queued: nobody takes messages
        assert all(w.alive() for w in fleet)  # an open breaker is not a stall
        gauge = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'grants_breaker_open{cause="token_refused"} 1.0' in gauge
        assert "grants_tenant_rate_limit 10000.0" in gauge  # the emulator's default bucket
        assert "grants_fleet_rate_per_second" in gauge
        # probes 1, 2, 4 s apart: at most one token request per probe interval for the fleet
        assert token_requests <= 3

        secret_file.write_text("rotated-secret\n")
        fixed = time.monotonic()
        list(client.wait_many(ids, timeout_s=15))
        drained_s = time.monotonic() - fixed
    outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    assert {o.status for o in outcomes.values()} == {"created"}
    assert redis_client.xlen(client.keys.dead) == 0
    assert breaker_lines(fleet, "OPEN") == 1 and breaker_lines(fleet, "CLOSED") == 1
    assert not any("rotated-secret" in w.log() for w in fleet)
    figures(
        requests=30,
        dead_letters=0,
        token_requests_in_4s=token_requests,
        drained_s=round(drained_s, 1),
    )


def test_revoked_tokens_are_replaced_without_opening_the_breaker(
    own_emulator: RunningEmulator,
    own_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    settings = own_settings(grants_concurrency=8)
    start_worker(settings)
    with GrantClient(settings) as client:
        list(client.wait_many(client.submit_many(new_requests(4)), timeout_s=20))
        tokens_before = own_emulator.admin.stats()["tokens_issued"]
        own_emulator.admin.revoke_tokens()
        ids = client.submit_many(new_requests(20))
        outcomes = list(client.wait_many(ids, timeout_s=20))
    assert {o.status for o in outcomes} == {"created"}
    assert own_emulator.admin.stats()["tokens_issued"] - tokens_before == 1
    assert read_breaker(redis_client, Keys(key_prefix)).state == "closed"
    assert redis_client.xlen(client.keys.dead) == 0


def test_a_missing_scope_pauses_the_fleet_until_the_scopes_are_restored(
    own_emulator: RunningEmulator,
    own_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    settings = own_settings(grants_concurrency=8)
    fleet = [start_worker(settings), start_worker(settings)]
    admin = own_emulator.admin
    full_scopes = ["create:client_grants", "read:client_grants", "update:client_grants"]
    with GrantClient(settings) as client:
        list(client.wait_many(client.submit_many(new_requests(4)), timeout_s=20))
        admin.set_worker_scopes(["read:client_grants"])
        admin.revoke_tokens()
        ids = client.submit_many(new_requests(30))
        wait_until(lambda: read_breaker(redis_client, Keys(key_prefix)).is_open, 10)
        time.sleep(2.0)
        breaker = read_breaker(redis_client, Keys(key_prefix))
        assert (breaker.state, breaker.cause) == ("open", "insufficient_scope")
        assert all(client.outcome(rid) is None for rid in ids)
        assert redis_client.xlen(client.keys.dead) == 0
        admin.set_worker_scopes(full_scopes)
        fixed = time.monotonic()
        list(client.wait_many(ids, timeout_s=15))
        drained_s = time.monotonic() - fixed
    outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    assert {o.status for o in outcomes.values()} == {"created"}
    assert redis_client.xlen(client.keys.dead) == 0
    assert breaker_lines(fleet, "OPEN") == 1 and breaker_lines(fleet, "CLOSED") == 1
    assert drained_s <= 15


def test_a_revoked_static_token_waits_for_a_new_token_file(
    own_emulator: RunningEmulator,
    own_settings: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    def new_token() -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": own_emulator.client_id,
            "client_secret": own_emulator.client_secret,
            "audience": own_emulator.management_audience,
        }
        answer = requests.post(f"{own_emulator.base_url}/oauth/token", data=form, timeout=10)
        token: str = answer.json()["access_token"]
        return token

    token_file = tmp_path / "token"
    token_file.write_text(new_token())
    settings = own_settings(
        auth0_client_id=None, auth0_client_secret=None, auth0_token_file=str(token_file)
    )
    start_worker(settings)
    with GrantClient(settings) as client:
        own_emulator.admin.revoke_tokens()
        ids = client.submit_many(new_requests(10))
        wait_until(lambda: read_breaker(redis_client, Keys(key_prefix)).is_open, 10)
        assert read_breaker(redis_client, Keys(key_prefix)).cause == "token_rejected"
        assert all(client.outcome(rid) is None for rid in ids)
        token_file.write_text(new_token())  # the probe runs at once on the change
        outcomes = list(client.wait_many(ids, timeout_s=15))
    assert {o.status for o in outcomes} == {"created"}
    assert redis_client.xlen(client.keys.dead) == 0
