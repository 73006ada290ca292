"""Revokes through real worker processes against the project's emulator over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from grant_worker.config.settings import Settings
from grant_worker.emulator.config import EmulatorConfig
from grant_worker.emulator.seed import default_seed
from grant_worker.emulator.testing import RunningEmulator, running_emulator
from grant_worker.tasks.keys import Keys
from grant_worker.worker.cli.main import cli
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import make_settings, next_client_id

API = "https://api.example.com/"
WAIT_S = 30.0


def create(client: GrantClient, client_id: str, scope: list[str] | None = None) -> dict[str, Any]:
    request_id = client.submit(
        {"grant": {"client_id": client_id, "audience": API, "scope": scope or ["read:data"]}}
    )
    outcome = client.wait(request_id, timeout_s=WAIT_S)
    assert outcome.status == "created", outcome
    assert outcome.grant is not None
    return outcome.grant


def on_tenant(emulator: Any, client_id: str) -> list[dict[str, Any]]:
    return [g for g in emulator.admin.grants() if g.get("client_id") == client_id]


def test_a_revoke_by_client_and_audience_deletes_the_grant_and_ends_revoked(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
    emulator: Any,
) -> None:  # fmt: skip
    start_worker(settings)
    owner = next_client_id()
    grant = create(client, owner)
    request_id = client.revoke(client_id=owner, audience=API)
    outcome = client.wait(request_id, timeout_s=WAIT_S)
    assert outcome.status == "revoked"
    assert outcome.done
    assert outcome.grant is not None and outcome.grant["id"] == grant["id"]
    assert outcome.grant["scope"] == ["read:data"]  # the grant as it was
    assert on_tenant(emulator, owner) == []


def test_a_revoke_by_grant_id_deletes_that_grant(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
    emulator: Any,
) -> None:  # fmt: skip
    start_worker(settings)
    owner = next_client_id()
    grant = create(client, owner)
    outcome = client.wait(client.revoke(grant_id=grant["id"]), timeout_s=WAIT_S)
    assert outcome.status == "revoked"
    assert on_tenant(emulator, owner) == []


def test_a_revoke_of_nothing_ends_absent_found_by_lookup_not_by_the_delete(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
    emulator: Any,
) -> None:  # fmt: skip
    start_worker(settings)
    by_key = client.wait(client.revoke(client_id=next_client_id(), audience=API), timeout_s=WAIT_S)
    by_id = client.wait(client.revoke(grant_id="cgr_doesnotexist00"), timeout_s=WAIT_S)
    assert (by_key.status, by_id.status) == ("absent", "absent")
    assert by_key.done and by_key.grant is None
    # Nothing was deleted, so no DELETE was needed: the lookup alone decided.
    assert (
        emulator.admin.stats()["requests_by_route"].get("DELETE /api/v2/client-grants/{id}", 0) == 0
    )


def test_a_lost_delete_reply_ends_revoked_resolved_by_lookup(
    settings_factory: Callable[..., Settings], start_worker: Callable[..., WorkerProcess],
    emulator: Any,
) -> None:  # fmt: skip
    settings = settings_factory(grants_retry_budget_s=20.0)
    start_worker(settings)
    owner = next_client_id()
    with GrantClient(settings) as client:
        create(client, owner)
        # Every DELETE is carried out, then its connection dropped: no reply ever comes.
        emulator.admin.set_faults(
            commit_lost_rate=1.0, commit_lost_reply="drop", fault_methods=["DELETE"]
        )
        outcome = client.wait(client.revoke(client_id=owner, audience=API), timeout_s=WAIT_S)
    assert outcome.status == "revoked", outcome
    assert outcome.resolved_by == "lookup"
    assert on_tenant(emulator, owner) == []


def test_a_reused_request_id_with_another_action_is_rejected_and_the_grant_stays(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
    emulator: Any,
) -> None:  # fmt: skip
    start_worker(settings)
    owner = next_client_id()
    first = client.submit({"request_id": "reuse-1", "grant": {"client_id": owner, "audience": API}})
    assert client.wait(first, timeout_s=WAIT_S).status == "created"
    client.revoke(client_id=owner, audience=API, request_id="reuse-1")
    reused = _rejection(client, "reuse-1")
    assert reused.error is not None and reused.error.code == "request_id_reused"
    assert len(on_tenant(emulator, owner)) == 1
    assert client.outcome("reuse-1").status == "created"  # type: ignore[union-attr]


def _rejection(client: GrantClient, request_id: str) -> Any:
    """The `rejected` outcome published for `request_id` (the record stays the first one's)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for outcome in client.results(status="rejected"):
            if outcome.request_id == request_id:
                return outcome
        time.sleep(0.2)
    raise AssertionError(f"no rejection of {request_id} within {WAIT_S} s")


def test_revokes_count_in_their_batch_ledger(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
) -> None:  # fmt: skip
    start_worker(settings)
    owner = next_client_id()
    create(client, owner)
    ids = client.submit_many([
        {"action": "revoke", "grant": {"client_id": owner, "audience": API}, "batch_id": "rv-b"},
        {"action": "revoke", "grant_id": "cgr_gonegonegone000", "batch_id": "rv-b"},
    ])  # fmt: skip
    list(client.wait_many(ids, timeout_s=WAIT_S))
    ledger = client.redis.hgetall(Keys(settings.grants_key_prefix).batch("rv-b"))
    assert (ledger.get("revoked"), ledger.get("absent"), ledger.get("queued")) == ("1", "1", "0")


# -- protected grants ------------------------------------------------------------------------


@pytest.fixture
def own_emulator() -> Iterator[RunningEmulator]:
    seed = default_seed().model_copy(
        update={"grants": [{"id": "cgr_system0000000001", "client_id": "app-acme-billing",
                            "audience": API, "scope": ["read:data"], "is_system": True}]}
    )  # fmt: skip
    with running_emulator(EmulatorConfig(seed=seed)) as emu:
        yield emu


def test_protected_grants_are_never_deleted(
    own_emulator: RunningEmulator, key_prefix: str, queue_name: str, redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:  # fmt: skip
    settings = make_settings(own_emulator, key_prefix, queue_name, redis_url=redis_url)
    start_worker(settings)
    with GrantClient(settings) as client:
        own = client.submit({"grant": {"client_id": own_emulator.client_id,
                                       "audience": settings.management_audience,
                                       "scope": ["read:client_grants"]}})  # fmt: skip
        assert client.wait(own, timeout_s=WAIT_S).status == "created"
        ids = [
            client.revoke(client_id=own_emulator.client_id, audience=settings.management_audience),
            client.revoke(grant_id="cgr_system0000000001"),
        ]
        outcomes = {o.request_id: o for o in client.wait_many(ids, timeout_s=WAIT_S)}
        dead = client.redis.xrange(Keys(settings.grants_key_prefix).dead)
    for request_id in ids:
        outcome = outcomes[request_id]
        assert outcome.status == "rejected"
        assert outcome.error is not None and outcome.error.code == "protected"
    assert {fields["request_id"] for _id, fields in dead} >= set(ids)
    grants = own_emulator.admin.grants()
    assert any(g["id"] == "cgr_system0000000001" for g in grants)
    assert any(g.get("client_id") == own_emulator.client_id for g in grants)


# -- the command -------------------------------------------------------------------------------


def grants_cli(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=settings_env(settings))


def test_grants_revoke_exits_0_for_revoked_and_for_absent(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
) -> None:  # fmt: skip
    start_worker(settings)
    owner = next_client_id()
    grant = create(client, owner)
    revoked = grants_cli(settings, "revoke", "--client-id", owner, "--audience", API, "--wait")
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout.splitlines()[1])["status"] == "revoked"
    absent = grants_cli(settings, "revoke", "--grant-id", grant["id"], "--wait")
    assert absent.exit_code == 0, absent.output
    assert json.loads(absent.stdout.splitlines()[1])["status"] == "absent"
    listed = grants_cli(settings, "results", "--status", "revoked")
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["grant"]["id"] for line in listed.stdout.splitlines()] == [grant["id"]]


def test_grants_revoke_needs_exactly_one_way_to_name_the_grant(settings: Settings) -> None:
    both = grants_cli(settings, "revoke", "--grant-id", "cgr_a", "--client-id", "c",
                      "--audience", API)  # fmt: skip
    half = grants_cli(settings, "revoke", "--client-id", "c")
    assert (both.exit_code, half.exit_code) == (2, 2)
    assert "by --grant-id (not both)" in both.output
    assert "--client-id and --audience go together" in half.output
    assert (
        redis.Redis.from_url(settings.redis_url.get_secret_value()).llen(settings.grants_queue) == 0
    )
