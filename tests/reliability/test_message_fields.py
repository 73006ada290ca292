"""Celery message fields and failures before the handler, through real worker processes:
`expires`, producers' delivery tags, and a message that fails on every delivery for a reason
that is no request's fault (the worker's own settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from grant_worker.config.settings import Settings
from grant_worker.tasks.messages.inspection import TASK_NAME
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import READY_MARK, WorkerProcess, settings_env
from tests.integration.conftest import next_client_id, push_raw, raw_celery_message
from tests.reliability.checks import assert_exactly_one_outcome_each, grant_duplicates
from tests.reliability.test_crash_recovery import FAST_RECOVERY, wait_until

API = "https://api.example.com/"


def test_a_message_whose_celery_expires_passed_is_rejected_as_expired(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    client: GrantClient,
    emulator: Any,
    figures: Callable[..., None],
) -> None:
    # A Celery producer's `expires`, and a worker that starts after it passed (Celery alone
    # would discard the messages without an outcome or a dead letter).
    ids = [f"exp-{n}" for n in range(3)]
    for task_id in ids:
        client.celery_app.send_task(
            TASK_NAME,
            kwargs={"request": {"grant": {"client_id": next_client_id(), "audience": API}}},
            task_id=task_id,
            queue=settings.grants_queue,
            expires=1,
        )
    fresh = client.submit({"grant": {"client_id": next_client_id(), "audience": API}})
    time.sleep(2)
    start_worker(settings)
    outcomes = [client.wait(task_id, timeout_s=30) for task_id in ids]
    for outcome in outcomes:
        assert outcome.status == "rejected"
        assert outcome.error is not None and outcome.error.code == "expired"
        assert "expired at" in outcome.error.message
    dead = {f["request_id"] for _id, f in client.redis.xrange(client.keys.dead)}
    assert set(ids) <= dead
    assert client.wait(fresh, timeout_s=30).status == "created"
    # `eta` / `countdown` are honoured: held by the worker until then. One that expires while
    # it is held is found expired by Celery itself, and recorded too.
    sent_at = time.time()
    for task_id, expires in (("eta-1", None), ("eta-expires-1", 1.0)):
        client.celery_app.send_task(
            TASK_NAME,
            kwargs={"request": {"grant": {"client_id": next_client_id(), "audience": API}}},
            task_id=task_id,
            queue=settings.grants_queue,
            countdown=2.5,
            expires=expires,
        )
    held = client.wait("eta-1", timeout_s=30)
    assert held.status == "created"
    finished = datetime.fromisoformat(held.finished_at.replace("Z", "+00:00")).timestamp()
    assert finished - sent_at >= 2.4
    lapsed = client.wait("eta-expires-1", timeout_s=30)
    assert lapsed.error is not None and lapsed.error.code == "expired"
    # Nothing expired reached Auth0.
    assert emulator.admin.stats()["requests_by_route"].get("POST /api/v2/client-grants") == 2
    figures(expired=len(ids) + 1, eta_held_s=round(finished - sent_at, 1))


@pytest.mark.slow
def test_messages_that_share_one_delivery_tag_survive_a_worker_kill(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: Any,
    figures: Callable[..., None],
) -> None:
    # Messages with one producer-written tag: kombu keeps unacknowledged messages in a hash by
    # tag, so without tags of their own they would share one record and a SIGKILL would leave
    # most without an outcome. All 40 are taken before the kill (room for all, slow replies):
    # the kill then falls outside kombu's own window between BRPOP and that record, which this
    # test is not about (see the README).
    settings = settings_factory(grants_concurrency=48, **FAST_RECOVERY)
    emulator.admin.set_faults(latency_ms=1500)
    ids = [f"tag-{n:03d}" for n in range(40)]
    for task_id in ids:
        message = json.loads(
            raw_celery_message(
                queue=settings.grants_queue,
                task=TASK_NAME,
                task_id=task_id,
                body=json.dumps(
                    [
                        [],
                        {"request": {"grant": {"client_id": next_client_id(), "audience": API}}},
                        {},
                    ]
                ).encode(),
            )
        )
        message["properties"]["delivery_tag"] = "same-tag-for-all"
        push_raw(redis_client, settings.grants_queue, json.dumps(message))
    worker = start_worker(settings, hostname="tag-1@%h")
    with GrantClient(settings) as client:
        wait_until(lambda: worker.log().count("] received") >= len(ids), 30, "all taken")
        worker.kill()
        done_at_kill = client.redis.xlen(client.keys.results)
        start_worker(settings, hostname="tag-2@%h")
        list(client.wait_many(ids, timeout_s=90))
        outcomes = assert_exactly_one_outcome_each(redis_client, client.keys.results, ids)
    assert {o.status for o in outcomes.values()} <= {"created", "exists"}
    assert grant_duplicates(emulator.admin.grants()) == {}
    figures(messages=len(ids), outcomes_at_kill=done_at_kill, lost=0, duplicates=0)


def test_a_settings_error_on_every_delivery_ends_as_poison_with_backoff_not_a_hot_loop(
    settings_factory: Callable[..., Settings],
    tmp_path: Path,
    figures: Callable[..., None],
) -> None:
    # A worker with AUTH0_DOMAIN unset refuses to start (exit 2, the one start path), so the
    # settings break after the start instead: the client secret's file
    # goes away before the first request builds the worker's Auth0 client. Each delivery
    # still counts, requeues back off, and the poison outcome needs Redis only.
    settings = settings_factory(grants_max_deliveries=2)
    secret_file = tmp_path / "client-secret"
    assert settings.auth0_client_secret is not None
    secret_file.write_text(settings.auth0_client_secret.get_secret_value())
    env = {
        key: value
        for key, value in {**os.environ, **settings_env(settings)}.items()
        if key != "AUTH0_CLIENT_SECRET"
    }
    env["AUTH0_CLIENT_SECRET_FILE"] = str(secret_file)
    log_path = tmp_path / "celery.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "grant_worker.worker.app",
        "worker",
        "--pool=threads",
        "--concurrency=2",
        f"--queues={settings.grants_queue}",
        "--without-mingle",
        "--without-gossip",
        "--loglevel=INFO",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: READY_MARK in log_path.read_bytes(), 30, "celery worker ready")
        secret_file.unlink()
        with GrantClient(settings) as client:
            request_id = client.submit(
                {"request_id": "no-settings-1", "grant": {"client_id": "c", "audience": API}}
            )
            started = time.monotonic()
            outcome = client.wait(request_id, timeout_s=30)
            seconds = time.monotonic() - started
        text = log_path.read_text(errors="replace")
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.code == "poison"
    received = text.count(f"Task grants.create[{request_id}] received")
    # Two failed deliveries, then the third is recorded as poison at receipt: 3, not thousands.
    assert received == 2, text[-3000:]
    assert f"message {request_id} delivered 3 times; poison" in text
    requeued = text.count("no outcome recorded (SecretFileError); requeued in")
    assert requeued == 2
    assert "requeued in 1 s" in text and "requeued in 2 s" in text  # backing off
    figures(deliveries=received + 1, seconds_to_poison=round(seconds, 1), requeues=requeued)
