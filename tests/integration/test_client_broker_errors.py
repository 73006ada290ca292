"""`GrantClient` raises its documented `BrokerUnavailable`, never a raw `redis` error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.worker.client import BrokerUnavailable, GrantClient
from tests.local_redis import RedisServer, free_port

REQUEST = {"grant": {"client_id": "svc-1", "audience": "https://api.example.com/"}}


def test_every_call_raises_broker_unavailable_when_redis_is_down(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with GrantClient(settings) as client:
        calls: list[Callable[[], object]] = [
            lambda: client.submit(REQUEST),
            lambda: client.outcome("req-1"),
            lambda: client.wait("req-1", timeout_s=1),
            lambda: list(client.wait_many(["req-1"], timeout_s=1)),
            lambda: list(client.results(status="created")),
            lambda: client.recorded_many(["req-1"]),
            lambda: client.revoke(grant_id="cgr_1"),
            lambda: client.newest_results(2),
            lambda: list(client.results(on_unreadable=lambda entry_id, why: None)),
        ]
        for call in calls:
            with pytest.raises(BrokerUnavailable) as raised:
                call()
            assert not raised.value.credentials_refused
            assert isinstance(raised.value.__cause__, redis.ConnectionError)
            assert "Redis at REDIS_URL is unavailable" in str(raised.value)


def test_refused_credentials_say_so_without_the_password(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    server = RedisServer(tmp_path, extra_args=["--requirepass", "right-pw"]).start()
    try:
        settings = settings_factory(redis_url=f"redis://:wrong-pw@127.0.0.1:{server.port}/0")
        with GrantClient(settings) as client, pytest.raises(BrokerUnavailable) as raised:
            client.submit(REQUEST)
        assert raised.value.credentials_refused
        assert "wrong-pw" not in str(raised.value) and "right-pw" not in str(raised.value)
    finally:
        server.stop()
