"""Operating a worker: one start path, Celery's tooling, the health port, logs, config errors.

Real worker processes on the shared Redis and the emulator; each test starts as few as it can.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import READY_MARK, WorkerProcess, settings_env
from tests.integration.conftest import next_client_id
from tests.local_redis import RedisServer, free_port

API = "https://api.example.com/"
WAIT_S = 30.0


def grant_request(client_id: str | None = None, **envelope: Any) -> dict[str, Any]:
    grant = {"client_id": client_id or next_client_id(), "audience": API, "scope": ["read:x"]}
    grant.update(envelope.pop("grant", {}))
    return {"grant": grant, **envelope}


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "grant_worker.worker.app", *args]


def start_process(
    command: list[str], env: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )


def wait_for_ready(process: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if READY_MARK in log_path.read_bytes():
            return
        assert process.poll() is None, log_path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"not ready:\n{log_path.read_text()}")


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_celery_a_is_the_same_worker_as_grants_worker_and_celery_inspect_works(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    port = free_port()
    settings = settings_factory(grants_concurrency=3, grants_metrics_port=port)
    env = settings_env(settings)
    log_path = tmp_path / "celery.log"
    # No --pool, --concurrency or --queues: the app's configuration decides, as for grants worker.
    node = f"ops-{os.getpid()}@{socket.gethostname()}"
    process = start_process(celery("worker", f"--hostname={node}"), env, log_path)
    try:
        wait_for_ready(process, log_path)
        stats = subprocess.run(
            # With a destination, inspect returns as soon as that node answers.
            celery("inspect", "stats", "--json", "--timeout", "10", "-d", node),
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stats.returncode == 0, stats.stdout + stats.stderr
        (node_stats,) = json.loads(stats.stdout.strip().splitlines()[-1]).values()
        assert node_stats["pool"]["max-concurrency"] == 3
        assert node_stats["pool"]["implementation"].endswith("thread:TaskPool")
        for command in ("ping", "active"):
            reply = subprocess.run(
                celery("inspect", command, "--timeout", "10", "-d", node),
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert reply.returncode == 0 and "1 node online" in reply.stdout, reply.stdout

        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        ready = requests.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {
            "bridge": "ok",
            "redis": "ok",
            "broker": "ok",
            "breaker": "ok",
        }
        assert requests.get(f"{base}/", timeout=5).status_code == 404
        assert requests.get(f"{base}/metricsx", timeout=5).status_code == 404
        with GrantClient(settings) as client:
            request_id = client.submit(grant_request())
            assert client.wait(request_id, timeout_s=WAIT_S).status == "created"
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        for gauge in ("grants_queue_depth", "grants_in_flight", "grants_dead_letters"):
            assert f"{gauge} " in metrics
        assert "grants_intake_pending 0.0" in metrics
        assert 'grants_outcomes_total{code="",status="created"} 1.0' in metrics
    finally:
        process.terminate()
        process.wait(timeout=30)
    log = log_path.read_text()
    assert "EncodeError" not in log
    assert "mingle" not in log  # the consumer is grants worker's: no mingle, no gossip


def test_celery_a_checks_the_auth0_settings_at_start(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    env = settings_env(settings_factory())
    env["AUTH0_DOMAIN"] = ""
    done = subprocess.run(
        celery("worker"),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "error: configuration: AUTH0_DOMAIN is required" in done.stderr


def test_a_taken_metrics_port_exits_2_and_a_port_range_lets_workers_share_a_host(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = settings_factory(grants_metrics_port=port, grants_metrics_port_count=3)
    start_worker(settings, hostname="first@%h")
    second = subprocess.run(
        [sys.executable, "-m", "grant_worker.worker", "worker", "--hostname=second@%h"],
        env={**os.environ, **settings_env(settings), "GRANTS_METRICS_PORT_COUNT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2
    assert f"GRANTS_METRICS_PORT: port {port} is taken" in second.stderr
    assert "Traceback" not in second.stderr

    # With a range, the second worker takes the next free port of it.
    third = start_worker(settings, hostname="third@%h")
    served = [
        candidate
        for candidate in range(port + 1, port + 3)
        if _answers(f"http://127.0.0.1:{candidate}/healthz")
    ]
    assert served, third.log()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_logs_are_json_with_one_event_per_outcome_and_retries_carry_the_request_id(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
) -> None:
    # A long budget: under the faults every request gets through, however unlucky.
    settings = settings_factory(grants_retry_budget_s=60.0)
    worker = start_worker(settings)  # its output is a file, not a terminal: JSON by default
    unknown = grant_request(grant={"audience": "https://nowhere.example.com/"}, batch_id="b-1")
    good = [grant_request() for _ in range(10)]
    with GrantClient(settings) as client:
        (unknown_id,) = client.submit_many([unknown])
        outcomes = {unknown_id: client.wait(unknown_id, timeout_s=WAIT_S)}
        # Half the calls fail with 503: P(no retry at all among 10 creates) = 0.5**10.
        emulator.admin.set_faults(error_rate=0.5)
        ids = client.submit_many(good)
        outcomes |= {request_id: client.wait(request_id, timeout_s=90) for request_id in ids}
        emulator.admin.set_faults(error_rate=0.0)
        rejected_id = "ops-rejected-1"
        client.redis.xadd(
            client.keys.intake,
            {"request": json.dumps({"request_id": rejected_id, "grant": {"audience": API}})},
        )
        outcomes[rejected_id] = client.wait(rejected_id, timeout_s=WAIT_S)
    worker.stop()

    text = worker.log()
    lines = json_lines(text)
    # Every line is JSON, Celery's own shutdown notice included.
    others = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    assert others == []
    assert any(line.get("event") == "worker_stop" for line in lines)
    assert any(line.get("message", "").endswith("ready.") for line in lines), "Celery's own"
    (start,) = [line for line in lines if line.get("event") == "worker_start"]
    assert start["concurrency"] == settings.grants_concurrency
    events = [line for line in lines if line.get("event") == "outcome"]
    assert sorted(event["request_id"] for event in events) == sorted(outcomes)
    for event in events:
        outcome = outcomes[event["request_id"]]
        assert event["status"] == outcome.status
        assert event["attempts"] == outcome.attempts
        assert isinstance(event["duration_s"], float)
        expected_level = "INFO" if outcome.done else "WARNING"
        assert event["level"] == expected_level
    by_id = {event["request_id"]: event for event in events}
    assert by_id[unknown_id]["code"] == "not_found" and by_id[unknown_id]["batch_id"] == "b-1"
    assert by_id[rejected_id]["code"] == "invalid_request"

    retries = [line for line in lines if line.get("message", "").startswith("retrying in")]
    assert retries, "the faults should have caused retries"
    assert all(line.get("request_id") in ids for line in retries)


def test_per_request_markers_are_deleted_once_the_outcome_is_recorded(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    redis_client: Any,
) -> None:
    settings = settings_factory()
    start_worker(settings)
    with GrantClient(settings) as client:
        ids = client.submit_many([grant_request() for _ in range(3)])
        for request_id in ids:
            assert client.wait(request_id, timeout_s=WAIT_S).status == "created"
        keys = client.keys
    for request_id in ids:
        assert redis_client.exists(keys.outcome_record(request_id))
        assert not redis_client.exists(keys.deliveries(request_id), keys.sent(request_id))


def test_readiness_fails_while_redis_refuses_writes(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path).start()
    try:
        port = free_port()
        settings = settings_factory(redis_url=server.url, grants_metrics_port=port)
        worker = start_worker(settings)
        url = f"http://127.0.0.1:{port}/readyz"
        assert requests.get(url, timeout=5).status_code == 200
        admin = __import__("redis").Redis(port=server.port)
        admin.config_set("maxmemory", 1)  # noeviction: every write is refused (OOM)
        try:
            reply = requests.get(url, timeout=5)
            assert reply.status_code == 503
            assert reply.json()["checks"]["redis"] == "Redis: OutOfMemoryError"
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            # The intake bridge's reads are writes too: its fault is logged at ERROR.
            deadline = time.monotonic() + 10
            while not any(
                line.get("event") == "broker_fault" and line["level"] == "ERROR"
                for line in json_lines(worker.log())
            ):
                assert time.monotonic() < deadline, worker.log()
                time.sleep(0.2)
        finally:
            admin.config_set("maxmemory", 0)
        # Ready again once a write goes through: the consumer's next move off the queue, or the
        # broker probe (every 2 s), whichever comes first.
        deadline = time.monotonic() + 10
        while (reply := requests.get(url, timeout=5)).status_code != 200:
            assert time.monotonic() < deadline, reply.text
            time.sleep(0.2)
    finally:
        server.stop()


def test_wrong_redis_password_exits_2_at_once_and_a_malformed_url_exits_2_in_one_line(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    server = RedisServer(tmp_path, extra_args=["--requirepass", "right"]).start(password="right")
    try:
        settings = settings_factory(redis_url=f"redis://:wrong@127.0.0.1:{server.port}/0")
        env = {**os.environ, **settings_env(settings)}
        for command in (
            [sys.executable, "-m", "grant_worker.worker", "worker"],
            celery("worker"),
        ):
            started = time.monotonic()
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 2, done.stderr
            assert "Redis refused the credentials" in done.stderr
            assert "wrong" not in done.stderr  # never the password
            assert time.monotonic() - started < 30
    finally:
        server.stop()

    env = {**os.environ, **settings_env(settings_factory()), "REDIS_URL": "not-a-url"}
    for command in (
        [sys.executable, "-m", "grant_worker.worker", "worker"],
        celery("worker"),
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "redis_url" in lines[0].lower(), done.stderr
