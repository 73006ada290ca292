"""The `grants` command tells a retrying script, a reader of results and a waiter the truth."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from grant_worker.config.settings import Settings
from grant_worker.tasks.fleet import read_beats
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import grants, next_client_id

API = "https://api.example.com/"


def test_resubmitting_the_same_request_id_prints_its_outcome_and_exits_0(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(settings)
    client_id, request_id = next_client_id(), f"retry-{uuid.uuid4().hex[:8]}"
    args = ["submit", "--client-id", client_id, "--audience", API, "--request-id", request_id]
    first = grants(settings, *args, "--wait")
    assert first.returncode == 0, first.stderr
    again = grants(settings, *args)
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0] == request_id
    assert json.loads(lines[1])["status"] == "created"
    assert json.loads(lines[1])["request_id"] == request_id
    with GrantClient(settings) as client:
        assert client.redis.llen(settings.grants_queue) == 0  # nothing enqueued again
    other = grants(settings, "submit", "--client-id", next_client_id(), "--audience", API,
                   "--request-id", request_id)  # fmt: skip
    assert other.returncode == 1
    assert other.stderr.startswith("error: request id") and "already used" in other.stderr


def test_results_for_an_unknown_request_id_exits_3_with_a_line(settings: Settings) -> None:
    done = grants(settings, "results", "--request-id", "no-such-request")
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.startswith("error: request no-such-request has no outcome")


def test_results_last_gives_the_newest_and_limit_the_oldest(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(settings)
    ids = []
    with GrantClient(settings) as client:
        for _ in range(4):  # one at a time: the results stream holds them in this order
            request_id = client.submit({"grant": {"client_id": next_client_id(), "audience": API}})
            client.wait(request_id, timeout_s=30)
            ids.append(request_id)
    newest = grants(settings, "results", "--last", "2")
    assert newest.returncode == 0, newest.stderr
    assert [json.loads(line)["request_id"] for line in newest.stdout.splitlines()] == ids[2:]
    oldest = grants(settings, "results", "--limit", "2")
    assert [json.loads(line)["request_id"] for line in oldest.stdout.splitlines()] == ids[:2]


def test_a_wait_timeout_with_no_worker_says_so(settings: Settings) -> None:
    done = grants(
        settings, "submit", "--client-id", next_client_id(), "--audience", API,
        "--wait", "--timeout", "0.5",
    )  # fmt: skip
    assert done.returncode == 3
    assert f"no worker is registered on queue {settings.grants_queue}" in done.stderr
    assert done.stderr.startswith("error: timeout:")


def test_bulk_plan_exits_1_when_a_row_is_invalid(settings: Settings, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(f"client_id,audience,subject_type\n{next_client_id()},{API},robot\n")
    done = grants(settings, "bulk", str(rows), "--plan")
    assert done.returncode == 1, done.stdout + done.stderr
    (invalid, summary) = [json.loads(line) for line in done.stdout.splitlines()]
    assert invalid["action"] == "invalid" and invalid["audience"] == API
    assert summary["invalid"] == 1


def test_a_wait_timeout_with_workers_only_on_another_queue_says_none_consumes_it(
    settings: Settings,
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    other = settings_factory(grants_queue=f"{settings.grants_queue}-other")
    assert other.grants_key_prefix == settings.grants_key_prefix
    start_worker(other)
    with GrantClient(settings) as client:
        deadline = time.monotonic() + 30
        while not any(b.current for b in read_beats(client.redis, client.keys)):
            assert time.monotonic() < deadline, "the other worker never beat"
            time.sleep(0.1)
    done = grants(
        settings, "submit", "--client-id", next_client_id(), "--audience", API,
        "--wait", "--timeout", "0.5",
    )  # fmt: skip
    assert done.returncode == 3
    assert f"no worker is registered on queue {settings.grants_queue}" in done.stderr
    assert f"live workers here consume {other.grants_queue}" in done.stderr


def test_a_revoke_resubmitted_under_its_id_prints_its_outcome_and_another_is_refused(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(settings)
    client_id, request_id = next_client_id(), f"revoke-{uuid.uuid4().hex[:8]}"
    created = grants(settings, "submit", "--client-id", client_id, "--audience", API, "--wait")
    assert created.returncode == 0, created.stderr
    args = ["revoke", "--client-id", client_id, "--audience", API, "--request-id", request_id]
    first = grants(settings, *args, "--wait")
    assert first.returncode == 0, first.stderr
    again = grants(settings, *args)
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0] == request_id
    assert json.loads(lines[1])["status"] == "revoked"
    with GrantClient(settings) as client:
        assert client.redis.llen(settings.grants_queue) == 0  # nothing enqueued again
    other = grants(settings, "revoke", "--grant-id", "cgr_someotherone", "--request-id", request_id)
    assert other.returncode == 1
    assert other.stderr.startswith("error: request id") and "already used" in other.stderr


def test_a_revoke_wait_timeout_with_no_worker_says_so(settings: Settings) -> None:
    done = grants(settings, "revoke", "--grant-id", "cgr_nobodyworks", "--wait", "--timeout", "0.5")
    assert done.returncode == 3
    assert done.stderr.startswith("error: timeout:")
    assert f"no worker is registered on queue {settings.grants_queue}" in done.stderr


def test_a_revoke_without_redis_exits_4_with_one_error_line(settings: Settings) -> None:
    from tests.local_redis import free_port

    done = grants(settings, "revoke", "--grant-id", "cgr_1",
                  REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("error: broker unavailable")
    assert len(done.stderr.splitlines()) == 1
