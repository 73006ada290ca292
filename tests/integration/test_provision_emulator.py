"""Provisioning over HTTP against the emulator: outcomes, 409 modes, retries, lost replies.

Faults are switched on at rate 1.0 and switched off from `before_send` once the attempt we
want has gone out, so every scenario is deterministic: "the first two POSTs fail" rather than
"some share of POSTs fail".
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.emulator.testing import RunningEmulator
from grant_worker.tasks.auth0.api import make_api
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.errors import (
    Auth0Error,
    BadRequest,
    GrantConflict,
    NotFound,
    ReturnToQueue,
)
from grant_worker.tasks.flow.breaker import read_breaker
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import GrantRequest
from grant_worker.tasks.provision import Provisioner, Resolution, make_provisioner

API = "https://api.example.com/"
# Clients of these tests: svc-00500 … svc-00999 (the pipeline tests use svc-01000 and up).
_numbers = itertools.count(500)

Build = Callable[..., Provisioner]


def client_id() -> str:
    return f"svc-{next(_numbers):05d}"


def request(owner: str, on_conflict: str = "keep", **grant: Any) -> GrantRequest:
    body = {"client_id": owner, "audience": API, **grant}
    return GrantRequest.model_validate({"grant": body, "on_conflict": on_conflict})


@pytest.fixture
def build(
    emulator: RunningEmulator,
    settings_factory: Callable[..., Settings],
    redis_client: redis.Redis,
) -> Build:
    def make(**overrides: Any) -> Provisioner:
        overrides.setdefault("grants_retry_budget_s", 10.0)
        return make_provisioner(settings_factory(**overrides), redis_client)

    return make


def grants_of(emulator: RunningEmulator, owner: str) -> list[dict[str, Any]]:
    return [g for g in emulator.admin.grants() if g.get("client_id") == owner]


def posts_of(emulator: RunningEmulator, owner: str) -> int:
    counts: dict[str, int] = emulator.admin.stats()["posts_by_grant_key"]
    return counts.get(f"{owner}|{API}|client", 0)


def faults_off_at_post(emulator: RunningEmulator, post_number: int) -> Callable[[], None]:
    """A `before_send` that switches every fault off just before POST number `post_number`."""
    posts = itertools.count(1)

    def before_send() -> None:
        if next(posts) == post_number:
            emulator.admin.set_faults(error_rate=0, drop_rate=0, commit_lost_rate=0, hang_rate=0)

    return before_send


def assert_no_secret(error: Auth0Error, emulator: RunningEmulator) -> None:
    shown = [str(error), repr(error), error.to_error_info().model_dump_json()]
    assert all(emulator.client_secret not in text for text in shown)
    assert all("eyJ" not in text for text in shown)  # no JWT


# -- created and final errors ------------------------------------------------------------------


def test_a_new_grant_is_created_once(emulator: RunningEmulator, build: Build) -> None:
    owner = client_id()
    resolution = build().provision(request(owner, scope=["read:data"]))
    assert resolution.status == "created"
    assert resolution.attempts == 1  # the POST (the token request is not counted)
    assert [g["id"] for g in grants_of(emulator, owner)] == [resolution.grant.id]


def test_an_express_configuration_client_is_a_final_bad_request(
    emulator: RunningEmulator, build: Build
) -> None:
    with pytest.raises(BadRequest) as caught:
        build().provision(request("app-express"))
    assert caught.value.auth0_error_code == "validation_error"
    assert "express_configuration" in caught.value.message
    assert caught.value.attempts == 1


def test_an_unknown_audience_is_not_found(emulator: RunningEmulator, build: Build) -> None:
    req = GrantRequest.model_validate(
        {"grant": {"client_id": client_id(), "audience": "https://nowhere.example.com/"}}
    )
    with pytest.raises(NotFound) as caught:
        build().provision(req)
    assert "nowhere.example.com" in caught.value.message


def test_an_unknown_client_is_not_found(emulator: RunningEmulator, build: Build) -> None:
    with pytest.raises(NotFound):
        build().provision(request("svc-99999999"))


def test_a_worker_token_lacking_the_create_scope_opens_the_breaker_and_returns_the_request(
    emulator: RunningEmulator, build: Build, redis_client: Any, key_prefix: str
) -> None:
    reader = build(auth0_client_id="grant-reader", auth0_client_secret="reader-secret")
    with pytest.raises(ReturnToQueue) as caught:
        reader.provision(request(client_id()))
    assert "insufficient" in caught.value.reason.lower()
    assert "reader-secret" not in caught.value.reason
    assert read_breaker(redis_client, Keys(key_prefix)).cause == "insufficient_scope"


# -- 409 under each on_conflict ------------------------------------------------------------------


def existing_grant(build: Build, owner: str, **grant: Any) -> Resolution:
    resolution = build().provision(request(owner, **grant))
    assert resolution.status == "created"
    return resolution


def test_keep_reports_the_existing_grant_and_what_differs(
    emulator: RunningEmulator, build: Build
) -> None:
    owner = client_id()
    first = existing_grant(build, owner, scope=["read:data"])
    resolution = build().provision(request(owner, scope=["read:data", "write:data"]))
    assert resolution.status == "exists"
    assert resolution.grant.id == first.grant.id
    assert resolution.differences == {"scope": {"missing": ["write:data"], "extra": []}}
    assert grants_of(emulator, owner)[0]["scope"] == ["read:data"]


def test_merge_adds_the_missing_scopes(emulator: RunningEmulator, build: Build) -> None:
    owner = client_id()
    existing_grant(build, owner, scope=["read:data"])
    resolution = build().provision(request(owner, "merge", scope=["write:data"]))
    assert resolution.status == "updated"
    assert grants_of(emulator, owner)[0]["scope"] == ["read:data", "write:data"]


def test_replace_makes_the_grant_equal_to_the_request(
    emulator: RunningEmulator, build: Build
) -> None:
    owner = client_id()
    existing_grant(build, owner, scope=["read:data"], organization_usage="allow")
    resolution = build().provision(request(owner, "replace", scope=["write:data"]))
    assert resolution.status == "updated"
    (stored,) = grants_of(emulator, owner)
    assert stored["scope"] == ["write:data"]
    assert stored.get("organization_usage", "deny") == "deny"


def test_replace_of_an_equal_grant_changes_nothing(emulator: RunningEmulator, build: Build) -> None:
    owner = client_id()
    existing_grant(build, owner, scope=["read:data"])
    resolution = build().provision(request(owner, "replace", scope=["read:data"]))
    assert resolution.status == "exists"
    assert "PATCH /api/v2/client-grants/{id}" not in emulator.admin.stats()["requests_by_route"]


def test_fail_refuses_a_grant_someone_else_created(emulator: RunningEmulator, build: Build) -> None:
    owner = client_id()
    existing_grant(build, owner)
    with pytest.raises(GrantConflict) as caught:
        build().provision(request(owner, "fail"))
    assert caught.value.code == "conflict"
    assert caught.value.http_status == 409


def test_a_possibly_sent_create_whose_grant_equals_the_request_is_created_by_lookup(
    emulator: RunningEmulator, build: Build
) -> None:
    owner = client_id()
    existing_grant(build, owner)
    resolution = build().provision(request(owner, "fail"), sent_before=True)
    assert (resolution.status, resolution.resolved_by) == ("created", "lookup")


# -- retries ---------------------------------------------------------------------------------------


def drain_the_tenants_bucket(settings: Settings) -> Callable[[], None]:
    """A `before_send` that spends the tenant's rate-limit token just before the first POST."""
    api = make_api(settings, make_session(settings))
    posts = itertools.count(1)

    def before_send() -> None:
        if next(posts) == 1:
            with contextlib.suppress(Auth0Error):
                api.find_grants(audience=API, client_id="nobody")

    return before_send


def test_a_rate_limited_request_waits_for_the_reset_and_is_created_once(
    emulator: RunningEmulator, build: Build, settings_factory: Callable[..., Settings]
) -> None:
    # One request a second, and the one token spent just before our POST: it meets a 429.
    emulator.admin.set_rate_limit(1, 1)
    owner = client_id()
    resolution = build().provision(
        request(owner), before_send=drain_the_tenants_bucket(settings_factory())
    )
    assert resolution.status == "created"
    assert resolution.attempts == 2
    assert emulator.admin.stats()["rate_limited"] == 1
    assert len(grants_of(emulator, owner)) == 1


def test_a_429_pauses_the_whole_fleet_until_the_reset(
    emulator: RunningEmulator,
    build: Build,
    settings_factory: Callable[..., Settings],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    emulator.admin.set_rate_limit(1, 1)
    drain = drain_the_tenants_bucket(settings_factory())
    started_epoch_s = time.time()
    build(grants_rate_limit=100).provision(request(client_id()), before_send=drain)
    pause_us = redis_client.hget(Keys(key_prefix).pace, "pause")
    assert pause_us is not None
    # the reset the tenant named: whole epoch seconds, after the request began
    assert int(pause_us) % 1_000_000 == 0
    assert int(pause_us) / 1_000_000 > started_epoch_s


def test_the_pace_keeps_the_fleet_under_the_tenants_limit(
    emulator: RunningEmulator, build: Build
) -> None:
    emulator.admin.set_rate_limit(20, 2)
    # two worker processes sharing one pace at half the tenant's rate
    fleet = [build(grants_rate_limit=10, grants_rate_burst=2) for _ in range(2)]
    for number in range(8):
        assert fleet[number % 2].provision(request(client_id())).status == "created"
    assert emulator.admin.stats()["rate_limited"] == 0


def test_server_errors_are_retried_until_created_once(
    emulator: RunningEmulator, build: Build
) -> None:
    owner = client_id()
    emulator.admin.set_faults(error_rate=1.0)
    resolution = build().provision(
        request(owner, "fail"), before_send=faults_off_at_post(emulator, 3)
    )
    assert resolution.status == "created"
    # each failed POST is followed by a lookup, which meets the same fault
    assert emulator.admin.stats()["injected_errors"] == 4
    assert len(grants_of(emulator, owner)) == 1
    assert resolution.attempts == 5


def test_dropped_connections_are_retried_until_created_once(
    emulator: RunningEmulator, build: Build
) -> None:
    owner = client_id()
    emulator.admin.set_faults(drop_rate=1.0)
    resolution = build().provision(request(owner), before_send=faults_off_at_post(emulator, 3))
    assert resolution.status == "created"
    assert emulator.admin.stats()["dropped"] == 4  # two POSTs and their two lookups
    assert len(grants_of(emulator, owner)) == 1


@pytest.mark.parametrize("lost_reply", ["error", "drop"])
def test_a_committed_grant_whose_reply_was_lost_is_created_by_lookup_even_under_fail(
    emulator: RunningEmulator, build: Build, lost_reply: str
) -> None:
    owner = client_id()
    emulator.admin.set_faults(commit_lost_rate=1.0, commit_lost_reply=lost_reply)
    resolution = build().provision(
        request(owner, "fail"), before_send=faults_off_at_post(emulator, 2)
    )
    assert (resolution.status, resolution.resolved_by) == ("created", "lookup")
    # the POST and the lookup after it both lose their replies; the second POST's 409 is ours
    assert emulator.admin.stats()["commit_lost"] == 2
    assert posts_of(emulator, owner) == 2
    assert [g["id"] for g in grants_of(emulator, owner)] == [resolution.grant.id]


def test_a_reply_that_times_out_is_retried_and_the_grant_exists_once(
    emulator: RunningEmulator, build: Build
) -> None:
    owner = client_id()
    emulator.admin.set_faults(hang_rate=1.0, hang_s=0.5)
    provisioner = build(grants_read_timeout_s=0.2)
    resolution = provisioner.provision(
        request(owner, "fail"), before_send=faults_off_at_post(emulator, 2)
    )
    # The hung POST is carried out 0.5 s after it arrived: before or after our second POST.
    assert resolution.status in ("created", "exists")
    time.sleep(0.6)  # let the hung request finish before counting
    assert len(grants_of(emulator, owner)) == 1


@pytest.mark.parametrize("fault", ["error_rate", "drop_rate"])
def test_an_outage_longer_than_the_budget_opens_the_breaker_instead_of_failing(
    emulator: RunningEmulator, build: Build, redis_client: Any, key_prefix: str, fault: str
) -> None:
    emulator.admin.set_faults(**{fault: 1.0})
    with pytest.raises(ReturnToQueue) as caught:
        build(grants_retry_budget_s=1.0).provision(request(client_id()))
    assert "breaker is open" in caught.value.reason
    assert emulator.client_secret not in caught.value.reason
    assert read_breaker(redis_client, Keys(key_prefix)).cause == "unreachable"


def test_many_creates_share_one_token(emulator: RunningEmulator, build: Build) -> None:
    provisioner = build()
    for _ in range(5):
        provisioner.provision(request(client_id()))
    assert emulator.admin.stats()["tokens_issued"] == 1
