"""Replay runs what it shows: a dead letter whose parts name different requests is refused with
a reason, and no other request id's records are touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis
from click.testing import CliRunner

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import ErrorInfo, Outcome, utc_timestamp
from grant_worker.tasks.outcomes.recorder import make_recorder
from grant_worker.worker.cli.main import cli
from grant_worker.worker.testing import settings_env

API = "https://api.example.com/"


def failed(request_id: str, batch_id: str | None = None) -> Outcome:
    return Outcome(
        request_id=request_id,
        batch_id=batch_id,
        status="failed",
        error=ErrorInfo(code="not_found", message="404"),
        attempts=1,
        received_at=utc_timestamp(),
        finished_at=utc_timestamp(),
    )


def test_a_letter_whose_nested_request_differs_is_refused_and_nothing_is_cleared(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis
) -> None:
    settings = settings_factory()
    keys = Keys(settings.grants_key_prefix)
    recorder = make_recorder(settings, redis_client)
    # What the operator sees: seen-1; what the letter would run: other-1, another client.
    nested: dict[str, Any] = {
        "request_id": "other-1",
        "grant": {"client_id": "someone-else", "audience": "https://elsewhere/", "scope": ["x"]},
    }
    assert recorder.record(failed("seen-1"), original=nested)
    batch_nested = {"request_id": "seen-2", "batch_id": "b-2",
                    "grant": {"client_id": "c", "audience": API}}  # fmt: skip
    assert recorder.record(failed("seen-2", batch_id="b-1"), original=batch_nested)
    # A letter listed under one id (the stream field) whose body names another.
    request = {"request_id": "seen-3", "grant": {"client_id": "c", "audience": API}}
    body = {"request_id": "seen-3", "status": "failed", "error": {"code": "not_found"},
            "request": request}  # fmt: skip
    redis_client.xadd(keys.dead, {"request_id": "listed-3", "status": "failed",
                                  "dead": json.dumps(body)})  # fmt: skip
    records_before = {
        rid: redis_client.get(keys.outcome_record(rid)) for rid in ("seen-1", "seen-2")
    }
    assert all(records_before.values())

    result = CliRunner().invoke(cli, ["dlq", "replay", "--all"], env=settings_env(settings))

    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["action"] for line in lines] == ["invalid", "invalid", "invalid"]
    assert "'other-1'" in lines[0]["reason"] and "'seen-1'" in lines[0]["reason"]
    assert "batch" in lines[1]["reason"]
    assert "listed-3" in lines[2]["reason"]
    for rid, before in records_before.items():
        assert redis_client.get(keys.outcome_record(rid)) == before
    assert redis_client.llen(settings.grants_queue) == 0
    assert redis_client.xlen(keys.dead) == 3
    assert not redis_client.exists(keys.claim("other-1"))
