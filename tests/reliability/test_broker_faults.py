"""Redis conditions under real workers, on Redis servers of the tests' own: out of memory,
refused credentials, persistence that can lose messages, a restart under the intake bridge,
and the producer's side (`grants submit` exits 4 when the broker is unavailable)."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.exit_codes import EXIT_BROKER_UNAVAILABLE, EXIT_USAGE
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import grants, next_client_id
from tests.local_redis import RedisServer, free_port
from tests.reliability.checks import assert_exactly_one_outcome_each, grant_duplicates
from tests.reliability.test_crash_recovery import FAST_RECOVERY, wait_until

API = "https://api.example.com/"


def broker_ready(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("grants_broker_ready "):
            return float(line.split()[1])
    return None


def requests(count: int) -> list[dict[str, Any]]:
    return [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(count)]


def test_redis_out_of_memory_pauses_workers_and_they_resume_by_themselves(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    figures: Callable[..., None],
) -> None:
    # Under `noeviction` at `maxmemory`: running and starting workers stay alive, and
    # `grants submit` says the broker is unavailable (exit 4), not a usage error (exit 2).
    server = RedisServer(tmp_path).start()
    admin = redis.Redis(port=server.port)
    metrics_port = free_port()
    late: WorkerProcess | None = None
    try:
        settings = settings_factory(
            redis_url=server.url,
            grants_concurrency=4,
            grants_metrics_port=metrics_port,
            **FAST_RECOVERY,
        )
        emulator.admin.set_faults(latency_ms=100)
        worker = start_worker(settings)
        with GrantClient(settings) as client:
            ids = client.submit_many(requests(30))
            wait_until(lambda: client.redis.xlen(client.keys.results) >= 3, 30, "first outcomes")
            admin.config_set("maxmemory", 1)  # every write that needs memory is refused
            oom_at = time.monotonic()
            submitted = grants(settings, "submit", "--audience", API, "--client-id", "c-1")
            late = WorkerProcess(
                settings.model_copy(update={"grants_metrics_port": None}), log_dir=tmp_path
            )
            # Not ready while Redis refuses writes: expected; it must stay alive.
            with contextlib.suppress(RuntimeError):
                late.start(ready_timeout_s=4)
            wait_until(
                lambda: broker_ready(metrics_port) == 0 or not worker.alive(),
                20,
                "not ready reported",
            )
            time.sleep(2)
            assert worker.alive(), f"worker exited with {worker.process and worker.process.poll()}"
            assert broker_ready(metrics_port) == 0
            assert late.alive(), late.log()[-3000:]
            admin.config_set("maxmemory", 0)
            freed_at = time.monotonic()
            outcomes_during = client.redis.xlen(client.keys.results)
            list(client.wait_many(ids, timeout_s=90))
            resumed_s = time.monotonic() - freed_at
            wait_until(lambda: broker_ready(metrics_port) == 1, 20, "ready again")
            late.wait_ready(30)
            check = redis.Redis.from_url(server.url, decode_responses=True)
            outcomes = assert_exactly_one_outcome_each(check, client.keys.results, ids)
        assert submitted.returncode == EXIT_BROKER_UNAVAILABLE, submitted.stderr
        assert "broker unavailable" in submitted.stderr
        assert {o.status for o in outcomes.values()} <= {"created", "exists"}
        assert grant_duplicates(emulator.admin.grants()) == {}
        assert worker.alive() and late.alive()
        assert "Unrecoverable error" not in worker.log() + late.log()
        late.stop(timeout_s=10)
        figures(
            requests=len(ids),
            oom_s=round(freed_at - oom_at, 1),
            outcomes_at_oom_end=outcomes_during,
            all_done_after_oom_s=round(resumed_s, 1),
            worker_exits=0,
            submit_exit_code=submitted.returncode,
        )
    finally:
        if late is not None:
            late.kill()
        server.stop()


@pytest.fixture
def cleanup() -> Iterator[list[WorkerProcess]]:
    workers: list[WorkerProcess] = []
    yield workers
    for worker in workers:
        worker.kill()


def test_refused_credentials_end_the_worker_with_code_2_and_say_why(
    tmp_path: Path, settings_factory: Callable[..., Settings], cleanup: list[WorkerProcess]
) -> None:
    server = RedisServer(tmp_path, extra_args=["--requirepass", "right-password"]).start(
        password="right-password"
    )
    try:
        wrong = server.url.replace("redis://", "redis://:wrong-password@")
        settings = settings_factory(redis_url=wrong)
        worker = WorkerProcess(settings, log_dir=tmp_path)
        # The worker should exit at once; if it does not, it must not outlive the test.
        cleanup.append(worker)
        with contextlib.suppress(RuntimeError):
            worker.start(ready_timeout_s=30)
        assert worker.process is not None
        code = worker.process.wait(timeout=30)
        log = worker.log()
        assert code == EXIT_USAGE, log[-3000:]
        assert "Redis refused the credentials" in log  # the one start path says so at once
        assert "wrong-password" not in log
        submitted = grants(settings, "submit", "--audience", API, "--client-id", "c-1")
        assert submitted.returncode == EXIT_USAGE, submitted.stderr
        assert "refused the credentials" in submitted.stderr
        assert "wrong-password" not in submitted.stderr
    finally:
        server.stop()


def test_a_broker_that_can_lose_or_evict_messages_is_warned_about_at_start(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Without an append-only file a Redis restart loses the queue silently: the worker warns.
    server = RedisServer(
        tmp_path, extra_args=["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]
    ).start()
    try:
        worker = start_worker(settings_factory(redis_url=server.url))
        log = worker.log()
        assert "WARNING" in log
        assert "without an append-only file (appendonly no)" in log
        assert "maxmemory-policy is allkeys-lru" in log
    finally:
        server.stop()


def test_grants_submit_and_bulk_exit_4_when_redis_is_unreachable(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    submitted = grants(settings, "submit", "--audience", API, "--client-id", "c-1")
    assert submitted.returncode == EXIT_BROKER_UNAVAILABLE, submitted.stderr
    assert "broker unavailable" in submitted.stderr
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"grant": {"client_id": "c-1", "audience": API}}) + "\n")
    bulk = grants(settings, "bulk", str(rows))
    assert bulk.returncode == EXIT_BROKER_UNAVAILABLE, bulk.stderr
    assert "broker unavailable" in bulk.stderr


def test_grants_bulk_reads_hostile_lines_within_bounds(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    rows = tmp_path / "hostile.jsonl"
    good = json.dumps({"grant": {"client_id": "c-1", "audience": API}})
    rows.write_text(
        "\n".join([good, "[" * 1200 + "]" * 1200, json.dumps({"x": "y" * 70_000}), good]) + "\n"
    )
    bulk = grants(settings_factory(), "bulk", str(rows))
    assert bulk.returncode == 1, bulk.stderr
    assert "line 2: request: nested 1200 deep, at most 48" in bulk.stderr
    assert "line 3: request: at most 65536 bytes" in bulk.stderr
    assert "Traceback" not in bulk.stderr


# A restarted bridge reads back its own pending entries first (`IntakeBridge.pump_once`): left
# to the 60 s claim meant for dead bridges, they would take this test past its timeout.
def test_the_intake_bridge_survives_a_redis_restart_and_keeps_bridging(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    figures: Callable[..., None],
) -> None:
    # A 2 s restart raises kombu's OperationalError in the bridge: it must survive it and
    # bridge every entry, those written before the restart and after.
    server = RedisServer(tmp_path).start()
    try:
        settings = settings_factory(redis_url=server.url, grants_concurrency=8, **FAST_RECOVERY)
        emulator.admin.set_faults(latency_ms=20)
        worker = start_worker(settings)
        with GrantClient(settings) as client:
            ids = [f"in-{n:03d}" for n in range(80)]
            pipe = client.redis.pipeline()
            for request_id, request in zip(ids, requests(len(ids)), strict=True):
                pipe.xadd(
                    client.keys.intake,
                    {"request": json.dumps({**request, "request_id": request_id})},
                )
            pipe.execute()
            wait_until(lambda: client.redis.xlen(client.keys.results) >= 10, 30, "first outcomes")
            server.restart(down_s=2.0)
            late_id = "in-after-restart"
            late = {**requests(1)[0], "request_id": late_id}
            wait_until(lambda: _xadd_when_up(client, late), 30, "Redis back")
            list(client.wait_many([*ids, late_id], timeout_s=120))
            check = redis.Redis.from_url(server.url, decode_responses=True)
            assert_exactly_one_outcome_each(check, client.keys.results, [*ids, late_id])
        assert worker.alive()
        assert "Exception in thread intake-bridge" not in worker.log()
        figures(entries=len(ids) + 1, redis_down_s=2.0, unprocessed=0)
    finally:
        server.stop()


def _xadd_when_up(client: GrantClient, request: dict[str, Any]) -> bool:
    try:
        client.redis.xadd(client.keys.intake, {"request": json.dumps(request)})
    except redis.RedisError:
        return False
    return True


def test_credentials_revoked_under_a_running_worker_end_it_with_code_2(
    tmp_path: Path, settings_factory: Callable[..., Settings], cleanup: list[WorkerProcess]
) -> None:
    server = RedisServer(tmp_path).start()
    try:
        settings = settings_factory(redis_url=server.url)
        worker = WorkerProcess(settings, log_dir=tmp_path)
        cleanup.append(worker)
        worker.start()
        admin = redis.Redis(port=server.port)
        # The password changes and every connection is dropped: reconnecting is refused.
        admin.config_set("requirepass", "rotated-password")
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal")
        assert worker.process is not None
        code = worker.process.wait(timeout=30)
        assert code == EXIT_USAGE, worker.log()[-3000:]
        assert "refused this worker's credentials" in worker.log()
    finally:
        server.stop()
