"""The pipeline end to end: a real worker process, a real Redis, the emulator over HTTP."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from grant_worker.config.settings import Settings
from grant_worker.tasks.flow.breaker import read_breaker
from grant_worker.tasks.flow.pace import read_pace
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.inspection import TASK_NAME
from grant_worker.tasks.messages.models import Outcome
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import (
    next_client_id,
    outcome_counts,
    push_raw,
    raw_celery_message,
)
from tests.local_redis import free_port

API = "https://api.example.com/"
WAIT_S = 30.0


def request(client_id: str | None = None, *scopes: str, **envelope: Any) -> dict[str, Any]:
    grant = {"client_id": client_id or next_client_id(), "audience": API, "scope": list(scopes)}
    grant.update(envelope.pop("grant", {}))
    return {"grant": grant, **envelope}


def run(client: GrantClient, *requests: dict[str, Any]) -> list[Outcome]:
    ids = client.submit_many(requests)
    return [client.wait(request_id, timeout_s=WAIT_S) for request_id in ids]


@pytest.fixture
def settings(shared_settings: Settings) -> Settings:
    return shared_settings


@pytest.fixture
def worker(shared_settings: Settings, emulator: Any) -> None:
    """The module's shared worker is running (see `shared_settings`), against an emulator reset
    for this test: faults or limits another test of this process set must not reach it."""


def test_a_new_grant_is_created_and_its_outcome_recorded_once(
    worker: None, client: GrantClient, emulator: Any, redis_client: Any
) -> None:
    (outcome,) = run(client, request(None, "read:a", metadata={"ticket": "ONB-1"}))
    assert outcome.status == "created"
    assert outcome.grant is not None and outcome.grant["id"].startswith("cgr_")
    assert outcome.metadata == {"ticket": "ONB-1"}
    assert outcome.attempts == 1
    assert [g["id"] for g in emulator.admin.grants()] == [outcome.grant["id"]]  # reset per test
    assert outcome_counts(redis_client, client.keys.results)[outcome.request_id] == 1


def test_the_outcome_is_published_for_live_listeners(
    worker: None, client: GrantClient, redis_client: Any
) -> None:
    listener = redis_client.pubsub()
    listener.subscribe(client.keys.events)
    listener.get_message(timeout=1)  # the subscribe confirmation
    (outcome,) = run(client, request())
    message = listener.get_message(timeout=5)
    assert message is not None
    assert json.loads(message["data"])["request_id"] == outcome.request_id


def test_keep_reports_an_existing_grant_and_what_differs(worker: None, client: GrantClient) -> None:
    client_id = next_client_id()
    (first,) = run(client, request(client_id, "read:a", "read:b"))
    (second,) = run(client, request(client_id, "read:a", "write:a"))
    assert first.status == "created"
    assert second.status == "exists"
    assert second.grant is not None and second.grant["id"] == first.grant["id"]  # type: ignore[index]
    assert second.differences is not None
    assert "scope" in second.differences


def test_merge_adds_the_missing_scopes(worker: None, client: GrantClient, emulator: Any) -> None:
    client_id = next_client_id()
    run(client, request(client_id, "read:a"))
    (merged,) = run(client, request(client_id, "write:a", on_conflict="merge"))
    assert merged.status == "updated"
    assert merged.grant is not None
    assert sorted(merged.grant["scope"]) == ["read:a", "write:a"]
    (again,) = run(client, request(client_id, "write:a", on_conflict="merge"))
    assert again.status == "exists"


def test_replace_makes_the_grant_equal_to_the_request(
    worker: None, client: GrantClient, emulator: Any
) -> None:
    client_id = next_client_id()
    run(client, request(client_id, "read:a", "read:b"))
    (replaced,) = run(client, request(client_id, "write:c", on_conflict="replace"))
    assert replaced.status == "updated"
    (stored,) = [g for g in emulator.admin.grants() if g.get("client_id") == client_id]
    assert stored["scope"] == ["write:c"]


def test_fail_turns_a_conflict_into_a_dead_letter(
    worker: None, client: GrantClient, redis_client: Any
) -> None:
    client_id = next_client_id()
    run(client, request(client_id, "read:a"))
    (failed,) = run(client, request(client_id, "read:a", on_conflict="fail"))
    assert failed.status == "failed"
    assert failed.error is not None and failed.error.code == "conflict"
    assert failed.error.http_status == 409
    (letter,) = [
        json.loads(fields["dead"])
        for _id, fields in redis_client.xrange(client.keys.dead)
        if fields["request_id"] == failed.request_id
    ]
    assert letter["request"]["on_conflict"] == "fail"
    assert letter["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("grant", "code", "http_status"),
    [
        ({"audience": "https://nowhere.example.com/"}, "not_found", 404),
        ({"client_id": "no-such-client"}, "not_found", 404),
        ({"client_id": "app-express"}, "bad_request", 400),
    ],
    ids=["unknown audience", "unknown client", "express client"],
)
def test_auth0_refusals_fail_without_retrying(
    worker: None,
    client: GrantClient,
    grant: dict[str, Any],
    code: str,
    http_status: int,
) -> None:
    (outcome,) = run(client, request(None, "read:a", grant=grant))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.http_status) == (code, http_status)
    assert outcome.error.retryable is False
    assert outcome.attempts == 1


def test_wrong_worker_credentials_stop_the_worker_at_start_with_exit_2(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(auth0_client_secret="wrong-secret")
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run(
        [sys.executable, "-m", "grant_worker.worker", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "refused the worker's credentials" in done.stderr
    assert "AUTH0_CLIENT_SECRET" in done.stderr
    assert "wrong-secret" not in done.stderr + done.stdout


def test_a_token_without_create_scope_opens_the_breaker_and_the_request_waits_queued(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: Any,
) -> None:
    reader = {
        "client_id": "reader-only",
        "client_secret": "reader-secret",
        "app_type": "non_interactive",
        "management_scopes": ["read:client_grants"],
    }
    emulator.admin.add_clients([reader])
    settings = settings_factory(auth0_client_id="reader-only", auth0_client_secret="reader-secret")
    start_worker(settings)  # the start-up check opens the breaker: the token lacks the scope
    with GrantClient(settings) as client:
        (request_id,) = client.submit_many([request()])
        time.sleep(2.0)
        assert client.outcome(request_id) is None
        breaker = read_breaker(redis_client, Keys(settings.grants_key_prefix))
        assert (breaker.state, breaker.cause) == ("open", "insufficient_scope")
        scopes = ["read:client_grants", "create:client_grants", "update:client_grants"]
        emulator.admin.add_clients([{**reader, "management_scopes": scopes}])
        outcome = client.wait(request_id, timeout_s=WAIT_S)
    assert outcome.status == "created"
    assert redis_client.xlen(Keys(settings.grants_key_prefix).dead) == 0


def test_requests_get_through_a_tight_rate_limit_by_waiting(
    worker: None, client: GrantClient, emulator: Any
) -> None:
    emulator.admin.set_rate_limit(10, 2)
    outcomes = run(client, *[request() for _ in range(20)])
    assert {outcome.status for outcome in outcomes} == {"created"}
    assert emulator.admin.stats()["rate_limited"] > 0
    assert len(emulator.admin.grants()) == 20


def test_requests_get_through_server_errors_and_dropped_connections_by_retrying(
    worker: None, client: GrantClient, emulator: Any
) -> None:
    emulator.admin.set_faults(error_rate=0.3, drop_rate=0.2)
    outcomes = run(client, *[request() for _ in range(20)])
    unfinished = [outcome.error for outcome in outcomes if not outcome.done]
    assert {outcome.status for outcome in outcomes} <= {"created", "exists"}, unfinished
    assert max(outcome.attempts for outcome in outcomes) > 1
    keys = [(g["client_id"], g["audience"]) for g in emulator.admin.grants()]
    assert len(keys) == len(set(keys)) == 20


def test_an_outage_longer_than_the_budget_waits_on_the_queue_and_then_creates(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
) -> None:
    settings = settings_factory(grants_retry_budget_s=1.0)
    start_worker(settings)
    emulator.admin.set_faults(error_rate=1.0)
    with GrantClient(settings) as client:
        (request_id,) = client.submit_many([request()])
        time.sleep(3.0)  # three budgets
        assert client.outcome(request_id) is None
        emulator.admin.set_faults(error_rate=0.0)
        outcome = client.wait(request_id, timeout_s=WAIT_S)
    assert outcome.status == "created"


def test_a_rate_limit_that_resets_after_the_budget_sends_the_request_back_to_the_queue(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: Any,
) -> None:
    settings = settings_factory(grants_retry_budget_s=1.0)
    worker = start_worker(settings)
    emulator.admin.set_rate_limit(0.01, 1)  # the second call meets a reset 100 s away
    with GrantClient(settings) as client:
        ids = client.submit_many([request(), request()])
        deadline = time.monotonic() + WAIT_S
        while not any(client.outcome(rid) for rid in ids):  # whichever took the one token
            assert time.monotonic() < deadline, "no request was created"
            time.sleep(0.1)
        time.sleep(2.0)
        outcomes = [client.outcome(rid) for rid in ids]
        assert sorted(o.status if o else "waiting" for o in outcomes) == ["created", "waiting"]
    pause = read_pace(redis_client, Keys(settings.grants_key_prefix)).pause_until
    assert pause is not None and pause > time.time() + 30
    assert "back to the queue" in worker.log()
    assert redis_client.xlen(Keys(settings.grants_key_prefix).dead) == 0


def test_a_short_token_lifetime_is_survived_by_refreshing(
    worker: None, client: GrantClient, emulator: Any
) -> None:
    emulator.admin.set_token_lifetime(1)
    first = run(client, request())
    time.sleep(1.5)
    second = run(client, request())
    assert [o.status for o in first + second] == ["created", "created"]


def test_a_duplicate_delivery_is_acknowledged_without_a_second_call(
    worker: None, client: GrantClient, emulator: Any, redis_client: Any
) -> None:
    envelope = request(request_id="dup-1")
    run(client, envelope)
    posts_before = emulator.admin.stats()["requests_by_status"].get("201", 0)
    client.submit(envelope)  # the same request id again, as a redelivery would bring it
    run(client, request())  # a later request finishing shows the duplicate was consumed
    assert emulator.admin.stats()["requests_by_status"].get("201", 0) == posts_before + 1
    assert outcome_counts(redis_client, client.keys.results)["dup-1"] == 1


def test_a_request_on_the_intake_stream_is_bridged_to_the_worker(
    worker: None, client: GrantClient, redis_client: Any
) -> None:
    envelope = request(request_id="intake-1")
    redis_client.xadd(client.keys.intake, {"request": json.dumps(envelope)})
    outcome = client.wait("intake-1", timeout_s=WAIT_S)
    assert outcome.status == "created"
    assert redis_client.xlen(client.keys.intake) == 0


def test_a_celery_message_written_by_another_language_is_worked_on(
    worker: None, client: GrantClient, redis_client: Any, settings: Settings
) -> None:
    body = json.dumps([[], {"request": request(request_id="from-node")}, {}]).encode()
    message = raw_celery_message(
        queue=settings.grants_queue, task=TASK_NAME, task_id="from-node", body=body
    )
    push_raw(redis_client, settings.grants_queue, message)
    assert client.wait("from-node", timeout_s=WAIT_S).status == "created"


def test_an_invalid_request_is_rejected_with_its_reason_and_nothing_is_sent(
    worker: None, client: GrantClient, emulator: Any, settings: Settings, redis_client: Any
) -> None:
    bad = {"grant": {"client_id": "svc-1", "audience": API, "scope": ["x" * 300]}}
    body = json.dumps([[], {"request": bad}, {}]).encode()
    push_raw(
        redis_client,
        settings.grants_queue,
        raw_celery_message(queue=settings.grants_queue, task=TASK_NAME, task_id="t-bad", body=body),
    )
    outcome = client.wait("t-bad", timeout_s=WAIT_S)
    assert outcome.status == "rejected"
    assert outcome.error is not None
    assert "grant.scope[0]: at most 280 characters" in outcome.error.message
    assert "POST /api/v2/client-grants" not in emulator.admin.stats()["requests_by_route"]


def test_a_pickle_message_is_rejected_unread_and_the_worker_goes_on(
    worker: None, client: GrantClient, settings: Settings, redis_client: Any
) -> None:
    body = pickle.dumps(((), {"request": request()}, {}))
    message = raw_celery_message(
        queue=settings.grants_queue,
        task=TASK_NAME,
        task_id="t-pickle",
        body=body,
        content_type="application/x-python-serialize",
    )
    push_raw(redis_client, settings.grants_queue, message)
    outcome = client.wait("t-pickle", timeout_s=WAIT_S)
    assert outcome.status == "rejected"
    assert outcome.error is not None and "JSON only" in outcome.error.message
    (after,) = run(client, request())
    assert after.status == "created"


def test_the_plain_celery_command_runs_the_same_worker(
    settings_factory: Callable[..., Settings], tmp_path: Any
) -> None:
    settings = settings_factory()
    log_path = tmp_path / "celery.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "grant_worker.worker.app",
        "worker",
        "--pool=threads",
    ]
    command += [f"--queues={settings.grants_queue}", "--concurrency=2"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **settings_env(settings)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with GrantClient(settings) as client:
            (outcome,) = run(client, request())
        assert outcome.status == "created"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_worker_exposes_prometheus_metrics_when_asked(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    port = free_port()
    settings = settings_factory(grants_metrics_port=port)
    start_worker(settings)
    with GrantClient(settings) as client:
        run(client, request(), request(None, grant={"audience": "https://nowhere.example.com/"}))
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'grants_outcomes_total{code="",status="created"} 1.0' in text
    assert 'grants_outcomes_total{code="not_found",status="failed"} 1.0' in text
    assert "grants_auth0_calls_total" in text


def test_following_results_yields_an_outcome_as_it_is_recorded(
    worker: None, client: GrantClient
) -> None:
    following = client.results(request_id="follow-1", follow=True)
    client.submit(request(request_id="follow-1"))
    outcome = next(following)
    assert (outcome.request_id, outcome.status) == ("follow-1", "created")
