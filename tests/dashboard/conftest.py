"""Fixtures for the dashboard: its app on a deployment of its own, and outcomes recorded
through the worker's own recorder (so the per-second counters are written as in production)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from grant_worker.config.settings import Settings
from grant_worker.tasks.messages.models import ErrorInfo, Outcome, utc_timestamp
from grant_worker.tasks.outcomes.recorder import make_recorder
from grant_worker.worker.dashboard.app import create_app

BASE_URL = "http://127.0.0.1:8808"
CLIENT_SECRET = "client-secret-never-shown-4f1c9a"
DASHBOARD_TOKEN = "dashboard-token-never-shown-77b2e0"


@pytest.fixture
def dashboard_settings(redis_url: str, key_prefix: str, queue_name: str) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "grants_key_prefix": key_prefix,
            "grants_queue": queue_name,
            "auth0_domain": "http://127.0.0.1:9",
            "auth0_client_id": "dashboard-test",
            "auth0_client_secret": CLIENT_SECRET,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@pytest.fixture
def browse(dashboard_settings: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    """A TestClient of the dashboard app built from `dashboard_settings(**overrides)`."""
    opened: list[TestClient] = []

    def open_app(**overrides: Any) -> TestClient:
        client = TestClient(create_app(dashboard_settings(**overrides)), base_url=BASE_URL)
        opened.append(client)
        return client

    yield open_app
    for client in opened:
        client.close()


@pytest.fixture
def record(
    dashboard_settings: Callable[..., Settings], redis_client: redis.Redis
) -> Callable[..., Outcome]:
    """Record one outcome (and its dead letter, when failed or rejected) like a worker does."""
    recorder = make_recorder(dashboard_settings(), redis_client)

    def write(
        request_id: str,
        status: str,
        *,
        batch_id: str | None = None,
        code: str | None = None,
        original: Any = None,
        differences: dict[str, Any] | None = None,
    ) -> Outcome:
        error = ErrorInfo(code=code, message=f"{code} happened") if code else None
        outcome = Outcome(
            request_id=request_id,
            batch_id=batch_id,
            status=status,  # type: ignore[arg-type]
            error=error,
            differences=differences,
            attempts=1,
            received_at=utc_timestamp(),
            finished_at=utc_timestamp(),
        )
        assert recorder.record(outcome, original=original)
        return outcome

    return write


def grant_request(request_id: str, audience: str, batch_id: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "request_id": request_id,
        "grant": {"client_id": "svc-00001", "audience": audience, "scope": ["read:data"]},
    }
    if batch_id:
        request["batch_id"] = batch_id
    return request
