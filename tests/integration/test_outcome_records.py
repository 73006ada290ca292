"""The outcome record is a short pointer into the results stream, and the request id's claim
lives only while the request is in flight, so a request costs Redis little once it ended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import ErrorInfo, GrantRequest, Outcome, utc_timestamp
from grant_worker.tasks.outcomes.claims import RequestClaims, normalised
from grant_worker.tasks.outcomes.recorder import OutcomeRecorder
from grant_worker.tasks.outcomes.records import Pointer, parse_pointer
from grant_worker.worker.client.dead_letters import DeadLetters
from grant_worker.worker.client.grant_client import GrantClient
from tests.integration.conftest import next_client_id
from tests.reliability.checks import outcomes_by_request
from tests.reliability.test_crash_recovery import wait_until

API = "https://api.example.com/"
WAIT_S = 30.0
# Redis keeps a string of up to 44 bytes in its key's own allocation; the pointer keeps to
# 28 (a smaller allocation class) with room to spare for the entry id's sequence number.
POINTER_MAX_BYTES = 28


@pytest.fixture
def settings(shared_settings: Settings, emulator: Any) -> Settings:
    # The emulator reset for this test: another test of this process may have left faults.
    """The module's shared worker (see `shared_settings`): these tests tell requests apart by
    id and never trim the stream as a whole."""
    return shared_settings


def request(request_id: str, owner: str, *scopes: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "grant": {"client_id": owner, "audience": API, "scope": list(scopes)},
    }


def posts_for(emulator: Any, owner: str) -> int:
    return int(emulator.admin.stats()["posts_by_grant_key"].get(f"{owner}|{API}|client", 0))


def pointer_of(redis_client: redis.Redis, keys: Keys, request_id: str) -> Pointer:
    raw = redis_client.get(keys.outcome_record(request_id))
    assert isinstance(raw, str), f"no record for {request_id}"
    return parse_pointer(raw)


def test_a_recorded_outcome_leaves_a_short_pointer_and_no_claim(
    client: GrantClient, redis_client: redis.Redis
) -> None:
    owner = next_client_id()
    first = client.wait(client.submit(request("ptr-1", owner, "read:a")), timeout_s=WAIT_S)
    assert first.status == "created"

    raw = redis_client.get(client.keys.outcome_record("ptr-1"))
    assert isinstance(raw, str) and len(raw.encode()) <= POINTER_MAX_BYTES, raw
    assert not redis_client.exists(client.keys.claim("ptr-1"))
    pointer = pointer_of(redis_client, client.keys, "ptr-1")
    ((_entry_id, fields),) = redis_client.xrange(
        client.keys.results, min=pointer.entry_id, max=pointer.entry_id
    )
    assert fields["request_id"] == "ptr-1" and pointer.status == "created"
    # Read through the pointer: the whole outcome, as the stream has it.
    assert client.outcome("ptr-1") == first
    assert client.recorded_many(["ptr-1", "never-used"]) == {"ptr-1": first}


def test_a_different_request_under_a_recorded_id_is_rejected_once_its_claim_is_gone(
    client: GrantClient, redis_client: redis.Redis, emulator: Any
) -> None:
    owner, other = next_client_id(), next_client_id()
    first = client.wait(client.submit(request("ptr-reused", owner, "read:a")), timeout_s=WAIT_S)
    assert not redis_client.exists(client.keys.claim("ptr-reused"))
    record_before = redis_client.get(client.keys.outcome_record("ptr-reused"))

    client.submit(request("ptr-reused", other, "read:a"))
    wait_until(
        lambda: len(outcomes_by_request(redis_client, client.keys.results)["ptr-reused"]) == 2,
        WAIT_S,
        "the reused id's answer",
    )
    rejected = outcomes_by_request(redis_client, client.keys.results)["ptr-reused"][1]
    assert rejected.status == "rejected"
    assert rejected.error is not None and rejected.error.code == "request_id_reused"
    # Told from the recorded outcome's grant, now that the claim is gone.
    assert f"{owner} on {API}" in rejected.error.message
    assert "ended created" in rejected.error.message
    assert posts_for(emulator, other) == 0
    assert redis_client.get(client.keys.outcome_record("ptr-reused")) == record_before
    assert client.outcome("ptr-reused") == first


def test_a_record_whose_results_entry_was_trimmed_still_answers_a_duplicate_without_a_call(
    client: GrantClient, redis_client: redis.Redis, emulator: Any
) -> None:
    owner = next_client_id()
    original = request("ptr-trimmed", owner, "read:a")
    client.wait(client.submit(original), timeout_s=WAIT_S)
    assert posts_for(emulator, owner) == 1
    pointer = pointer_of(redis_client, client.keys, "ptr-trimmed")
    # As GRANTS_STREAM_MAXLEN trims the oldest entries (only this one here: the stream is
    # shared with the module's other tests).
    assert redis_client.xdel(client.keys.results, pointer.entry_id) == 1

    recorded = client.outcome("ptr-trimmed")
    assert recorded is not None
    assert (recorded.request_id, recorded.status, recorded.grant) == (
        "ptr-trimmed",
        "created",
        None,
    )

    client.submit(original)
    marker = client.submit(request("ptr-after-trim", next_client_id()))
    client.wait(marker, timeout_s=WAIT_S)
    wait_until(
        lambda: (
            redis_client.llen(client.settings.grants_queue) == 0
            and redis_client.hlen(client.keys.unacked) == 0
        ),
        WAIT_S,
        "the duplicate acknowledged",
    )
    assert posts_for(emulator, owner) == 1
    assert "ptr-trimmed" not in outcomes_by_request(redis_client, client.keys.results)


def test_a_replayed_request_keeps_its_id_while_it_waits_on_the_queue(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis
) -> None:
    # A deployment of its own, with no worker: the replay stays on the queue.
    client = GrantClient(settings_factory())
    keys = client.keys
    mine = GrantRequest.model_validate(request("ptr-replay", "svc-replay-a"))
    theirs = GrantRequest.model_validate(request("ptr-replay", "svc-replay-b"))
    claims = RequestClaims(redis_client, keys, ttl_s=60)
    recorder = OutcomeRecorder(redis_client, keys, record_ttl_s=60, stream_maxlen=0)
    assert claims.claim("ptr-replay", mine) is None
    stamp = utc_timestamp()
    failed = Outcome(
        request_id="ptr-replay",
        status="failed",
        error=ErrorInfo(code="upstream_error", message="x"),
        received_at=stamp,
        finished_at=stamp,
    )
    assert recorder.record(failed, original=mine.wire())
    assert not redis_client.exists(keys.claim("ptr-replay"))

    with client:
        (letter,) = DeadLetters(client).all()
        (result,) = DeadLetters(client).replay([letter])
    assert result.action == "replayed"
    assert not redis_client.exists(keys.outcome_record("ptr-replay"))

    earlier = claims.claim("ptr-replay", theirs)
    assert earlier is not None and earlier.request == normalised(mine)
    assert claims.claim("ptr-replay", mine) is None
