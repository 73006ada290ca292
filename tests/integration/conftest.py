"""Fixtures for tests that run the pipeline: settings on the emulator, real worker processes."""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.connections import delete_deployment
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess, settings_env

_client_numbers = itertools.count(1000)


def next_client_id() -> str:
    """A seeded client no other test in this session uses (svc-01000 … svc-04999)."""
    return f"svc-{next(_client_numbers):05d}"


def grants(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`grants ARGS` as its own process, as a script runs it, on `settings` and `env`."""
    return subprocess.run(
        [sys.executable, "-m", "grant_worker.worker", *args],
        env={**os.environ, **settings_env(settings), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def make_settings(emulator: Any, key_prefix: str, queue_name: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth0_domain": emulator.base_url,
        "auth0_client_id": emulator.client_id,
        "auth0_client_secret": emulator.client_secret,
        "grants_key_prefix": key_prefix,
        "grants_queue": queue_name,
        "grants_retry_budget_s": 5.0,
        "grants_concurrency": 4,
        "grants_rate_limit": 0,
        "grants_restore_interval_s": 1.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def shared_settings(
    emulator_server: Any, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """One worker for the tests of this module that need no settings of their own: starting
    a worker costs seconds, and these tests tell their requests apart by id anyway."""
    tag = uuid.uuid4().hex[:10]
    settings = make_settings(
        emulator_server,
        f"test-{tag}:",
        f"test-grants-{tag}",
        redis_url=redis_url,
        grants_retry_budget_s=30.0,
    )
    worker = WorkerProcess(settings, log_dir=tmp_path_factory.mktemp("worker"))
    worker.start()
    yield settings
    worker.stop(timeout_s=10)
    delete_deployment(redis.Redis.from_url(redis_url), settings)


@pytest.fixture
def settings_factory(
    emulator: Any, key_prefix: str, queue_name: str, redis_url: str
) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        overrides.setdefault("redis_url", redis_url)
        return make_settings(emulator, key_prefix, queue_name, **overrides)

    return build


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real worker processes; all are stopped (or killed) when the test ends."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, **kwargs: Any) -> WorkerProcess:
        worker = WorkerProcess(settings, log_dir=tmp_path, **kwargs)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop(timeout_s=10)


@pytest.fixture
def client(settings: Settings) -> Iterator[GrantClient]:
    with GrantClient(settings) as grant_client:
        yield grant_client


def raw_celery_message(
    *,
    queue: str,
    task: str,
    task_id: str,
    body: bytes,
    content_type: str = "application/json",
) -> str:
    """A Celery protocol 2 message as the Redis transport stores it, as a non-Python producer
    (celery-node, gocelery) writes it: JSON with a base64 body, pushed onto the queue's list."""
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": {
                "lang": "js",
                "task": task,
                "id": task_id,
                "root_id": task_id,
                "parent_id": None,
                "group": None,
                "retries": 0,
                "eta": None,
                "expires": None,
                "timelimit": [None, None],
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": str(uuid.uuid4()),
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )


def push_raw(client: redis.Redis, queue: str, message: str) -> None:
    client.lpush(queue, message)


def outcome_counts(client: redis.Redis, results_key: str) -> dict[str, int]:
    """How many outcomes each request id has on the results stream."""
    counts: dict[str, int] = {}
    for _entry_id, fields in client.xrange(results_key):
        counts[fields["request_id"]] = counts.get(fields["request_id"], 0) + 1
    return counts
