"""`celery -A grant_worker.worker.app worker` with Celery's own flags: `--concurrency` is honoured
by the project's layer too; `-Q` naming another queue is refused with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.fleet import read_beats
from grant_worker.tasks.keys import Keys
from grant_worker.worker.testing import READY_MARK, settings_env


@pytest.fixture
def celery_worker(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Path]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings, *flags: str) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = tmp_path / f"celery-{len(started)}.log"
        env = {**os.environ, **settings_env(settings), "GRANTS_LOG_FORMAT": "json"}
        command = [sys.executable, "-m", "celery", "-A", "grant_worker.worker.app", "worker"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*command, "--loglevel", "INFO", *flags],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process, log_path

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s} s")
        time.sleep(0.1)


def test_concurrency_flag_sizes_the_start_line_and_the_heartbeat(
    settings_factory: Callable[..., Settings],
    celery_worker: Callable[..., tuple[subprocess.Popen[bytes], Path]],
    redis_client: redis.Redis,
) -> None:
    settings = settings_factory(grants_concurrency=4, grants_stall_after_s=4.0)
    process, log_path = celery_worker(settings, "--concurrency", "2", "-Q", settings.grants_queue)
    wait_for(lambda: READY_MARK in log_path.read_bytes(), 30, "ready line")
    assert process.poll() is None
    events = [
        json.loads(line)
        for line in log_path.read_text().splitlines()
        if line.startswith("{") and '"worker_start"' in line
    ]
    (start,) = events
    assert start["concurrency"] == 2 and "2 threads" in start["message"]
    keys = Keys(settings.grants_key_prefix)
    wait_for(lambda: bool(read_beats(redis_client, keys)), 10, "heartbeat")
    (beat,) = read_beats(redis_client, keys)
    assert beat.capacity == 2


@pytest.mark.parametrize("queues", ["other", f"other,{'{queue}'}"])
def test_a_queue_flag_other_than_grants_queue_is_refused_with_one_line(
    settings_factory: Callable[..., Settings],
    celery_worker: Callable[..., tuple[subprocess.Popen[bytes], Path]],
    queues: str,
) -> None:
    settings = settings_factory()
    process, log_path = celery_worker(settings, "-Q", queues.format(queue=settings.grants_queue))
    assert process.wait(timeout=30) == 2
    errors = [line for line in log_path.read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log_path.read_text()
    assert "GRANTS_QUEUE" in errors[0] and "-Q other" in errors[0]
    assert READY_MARK not in log_path.read_bytes()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (("-P", "prefork"), "-P prefork"),
        (("--pool=solo",), "-P solo"),
        (("--autoscale", "4,1"), "--autoscale"),
    ],
    ids=["prefork", "solo", "autoscale"],
)
def test_a_pool_other_than_threads_or_autoscale_is_refused_with_one_line(
    settings_factory: Callable[..., Settings],
    celery_worker: Callable[..., tuple[subprocess.Popen[bytes], Path]],
    flags: tuple[str, ...],
    named: str,
) -> None:
    process, log_path = celery_worker(settings_factory(), *flags)
    assert process.wait(timeout=30) == 2, log_path.read_text()
    errors = [line for line in log_path.read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log_path.read_text()
    assert "GRANTS_CONCURRENCY" in errors[0] and named in errors[0]
    assert READY_MARK not in log_path.read_bytes()
