"""Every outcome true, on real workers: a clean refusal stays `conflict` on replay and on
redelivery, concurrent merges lose no scope, slow creates are resolved by a lookup instead of
failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.messages.models import Outcome
from grant_worker.worker.client.dead_letters import DeadLetters
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import next_client_id
from tests.reliability.checks import grant_duplicates, outcomes_by_request, shipped_defaults
from tests.reliability.test_crash_recovery import wait_until

API = "https://api.example.com/"


def grant_of(emulator: Any, client_id: str) -> dict[str, Any]:
    (grant,) = [g for g in emulator.admin.grants() if g.get("client_id") == client_id]
    return grant


def new_outcome(client: GrantClient, request_id: str, after: Outcome, timeout_s: float) -> Outcome:
    """The outcome recorded for `request_id` once it is no longer `after`."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = client.outcome(request_id)
        if outcome is not None and outcome != after:
            return outcome
        assert time.monotonic() < deadline, f"no new outcome for {request_id}"
        time.sleep(0.1)


def test_a_fail_conflict_stays_conflict_after_a_dlq_replay(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
) -> None:
    start_worker(settings)
    owner = next_client_id()
    base = {"grant": {"client_id": owner, "audience": API, "scope": ["read:data"]}}
    with GrantClient(settings) as client:
        assert client.wait(client.submit(base), timeout_s=30).status == "created"
        request = {
            "request_id": "fail-replayed",
            "grant": {"client_id": owner, "audience": API, "scope": ["write:data"]},
            "on_conflict": "fail",
        }
        first = client.wait(client.submit(request), timeout_s=30)
        assert (first.status, first.error and first.error.code) == ("failed", "conflict")
        dead = DeadLetters(client)
        (letter,) = [x for x in dead.all() if x.request_id == "fail-replayed"]
        (result,) = dead.replay([letter])
        assert result.action == "replayed"
        replayed = new_outcome(client, "fail-replayed", first, timeout_s=30)
    assert replayed.status == "failed"
    assert replayed.error is not None and replayed.error.code == "conflict"
    assert grant_of(emulator, owner)["scope"] == ["read:data"]


def test_a_fail_conflict_stays_conflict_when_redelivered_after_a_crash_mid_post(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
) -> None:
    settings = settings_factory()
    worker = start_worker(settings, hostname="crashing@test")
    owner = next_client_id()
    base = {"grant": {"client_id": owner, "audience": API, "scope": ["read:data"]}}
    with GrantClient(settings) as client:
        assert client.wait(client.submit(base), timeout_s=30).status == "created"
        emulator.admin.set_faults(create_latency_ms=3000)
        request_id = client.submit(
            {
                "request_id": "fail-redelivered",
                "grant": {"client_id": owner, "audience": API, "scope": ["write:data"]},
                "on_conflict": "fail",
            }
        )
        key = f"{owner}|{API}|client"
        wait_until(
            lambda: emulator.admin.stats()["posts_by_grant_key"].get(key, 0) >= 2, 30, "the POST"
        )
        worker.kill()  # its POST is answered 409 to no one
        emulator.admin.set_faults(create_latency_ms=0)
        start_worker(settings, hostname="successor@test")
        outcome = client.wait(request_id, timeout_s=60)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.code == "conflict"
    assert emulator.admin.stats()["posts_by_grant_key"][key] == 3  # base, killed, redelivered


def test_concurrent_merges_on_two_workers_lose_no_scope(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
    figures: Callable[..., None],
) -> None:
    settings = settings_factory(grants_concurrency=20)
    start_worker(settings, hostname="merge-1@test")
    start_worker(settings, hostname="merge-2@test")
    owners = [next_client_id() for _ in range(20)]
    with GrantClient(settings) as client:
        bases = [{"grant": {"client_id": o, "audience": API, "scope": ["base"]}} for o in owners]
        list(client.wait_many(client.submit_many(bases), timeout_s=60))
        # Slow enough that both requests of a pair read the grant before either PATCHes.
        emulator.admin.set_faults(latency_ms=200)
        pairs = [
            {"grant": {"client_id": o, "audience": API, "scope": [scope]}, "on_conflict": "merge"}
            for o in owners
            for scope in ("from-a", "from-b")
        ]
        ids = client.submit_many(pairs)
        outcomes = list(client.wait_many(ids, timeout_s=120))
    scopes = {o: set(grant_of(emulator, o)["scope"]) for o in owners}
    lost = [o for o in owners if scopes[o] != {"base", "from-a", "from-b"}]
    assert not lost, {o: scopes[o] for o in lost}
    assert {outcome.status for outcome in outcomes} <= {"updated", "exists"}
    figures(
        pairs=len(owners),
        workers=2,
        pairs_with_a_lost_scope=len(lost),
        patches=emulator.admin.stats()["requests_by_route"].get(
            "PATCH /api/v2/client-grants/{id}", 0
        ),
    )


def test_creates_slower_than_the_read_timeout_end_created_not_failed(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
    figures: Callable[..., None],
) -> None:
    # The finding's 20 s creates against a 15 s read timeout, scaled to 4 s against 3 s.
    settings = settings_factory(
        grants_read_timeout_s=3.0, grants_retry_budget_s=12.0, grants_concurrency=6
    )
    emulator.admin.set_faults(create_latency_ms=4000)
    start_worker(settings)
    requests = [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(6)]
    with GrantClient(settings) as client:
        ids = client.submit_many(requests)
        outcomes = list(client.wait_many(ids, timeout_s=60))
    failed = [o for o in outcomes if o.status != "created"]
    assert not failed, [(o.status, o.error and o.error.code) for o in failed]
    assert all(o.resolved_by == "lookup" for o in outcomes)
    grants = emulator.admin.grants()
    assert len(grants) == 6 and grant_duplicates(grants) == {}
    posts = emulator.admin.stats()["posts_by_grant_key"]
    figures(
        requests=len(ids),
        failed=len(failed),
        resolved_by_lookup=sum(1 for o in outcomes if o.resolved_by == "lookup"),
        posts=sum(posts.values()),
        results_entries=sum(
            len(v) for v in outcomes_by_request(redis_client, client.keys.results).values()
        ),
    )


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_patch_the_tenant_carries_out_late_does_not_erase_a_later_merge(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    figures: Callable[..., None],
) -> None:
    # Default settings: a 15 s read timeout, and R1's first PATCH carried out 20 s after it
    # arrived; R2 merges one second after that PATCH was sent.
    settings = settings_factory(**shipped_defaults())
    start_worker(settings)
    owner = next_client_id()
    late_s = 20.0
    with GrantClient(settings) as client:
        base = {"grant": {"client_id": owner, "audience": API, "scope": ["s0"]}}
        assert client.wait(client.submit(base), timeout_s=30).status == "created"
        emulator.admin.hold_writes(late_s, method="PATCH", reply="late")
        merge = {"client_id": owner, "audience": API}
        first = client.submit({"grant": {**merge, "scope": ["a"]}, "on_conflict": "merge"})
        wait_until(lambda: emulator.admin.stats()["late_writes"] == 1, 30, "R1's PATCH held")
        held_at = time.monotonic()
        time.sleep(1.0)
        second = client.submit({"grant": {**merge, "scope": ["b"]}, "on_conflict": "merge"})
        outcomes = {rid: client.wait(rid, timeout_s=120) for rid in (first, second)}
        done_s = time.monotonic() - held_at
        # Past the moment the tenant carried out R1's first PATCH, whatever the outcomes said.
        time.sleep(max(0.0, late_s + 2.0 - (time.monotonic() - held_at)))
    held = set(grant_of(emulator, owner)["scope"])
    claimed = {rid: set((o.grant or {}).get("scope", [])) for rid, o in outcomes.items()}
    figures(
        held_by_the_tenant=sorted(held),
        statuses=[o.status for o in outcomes.values()],
        claimed=[sorted(c) for c in claimed.values()],
        both_done_after_s=round(done_s, 1),
        patches=emulator.admin.stats()["requests_by_route"].get(
            "PATCH /api/v2/client-grants/{id}", 0
        ),
    )
    assert [o.status for o in outcomes.values()] == ["updated", "updated"]
    assert held == {"s0", "a", "b"}, f"the tenant holds {sorted(held)}"
    for rid, scopes in claimed.items():
        assert scopes <= held, f"{rid} claims {sorted(scopes - held)}, which the tenant lacks"
