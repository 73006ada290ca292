"""Shared fixtures: a real Redis and the project's Auth0 emulator over HTTP.

Isolation comes from names, not from separate servers: every test gets its own key prefix and
its own queue name on the one Redis, so tests never see each other's streams or messages.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis

if TYPE_CHECKING:
    from grant_worker.emulator.testing import RunningEmulator

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long scenarios (`slow`) first: run side by side (`make test` uses pytest-xdist),
    a 100 s test handed out last would finish alone, long after the rest."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # pragma: no cover - environment problem
        pytest.exit(f"no Redis answers at {REDIS_URL}: {exc} (run scripts/ensure-redis)", 2)
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A prefix no other test uses; its keys are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    keys = list(redis_client.scan_iter(f"{prefix}*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture
def queue_name(redis_client: redis.Redis) -> Iterator[str]:
    name = f"test-grants-{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(redis_client.scan_iter(f"{name}*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[RunningEmulator]:
    from grant_worker.emulator.testing import running_emulator

    with running_emulator() as running:
        yield running


@pytest.fixture
def emulator(emulator_server: RunningEmulator) -> RunningEmulator:
    """The session's emulator, with grants, counters, faults and rate limits reset."""
    emulator_server.admin.reset()
    return emulator_server
