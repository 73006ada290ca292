"""Malformed values in Redis never end a command in a traceback: each unreadable entry is shown
as unreadable or skipped in one line on stderr, and the readable ones are still listed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.worker.cli.main import cli
from grant_worker.worker.testing import settings_env
from tests.crafted_data import GOOD_BATCH, GOOD_DEAD, GOOD_RESULT, JUNK_BATCH, plant

UNREADABLE_LETTERS = 6


@pytest.fixture
def settings(
    redis_url: str, key_prefix: str, queue_name: str, redis_client: redis.Redis
) -> Iterator[Settings]:
    plant(redis_client, Keys(key_prefix), queue_name)
    yield Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_url,
        grants_key_prefix=key_prefix,
        grants_queue=queue_name,
        auth0_domain="http://127.0.0.1:9",
        auth0_client_id="crafted",
        auth0_client_secret="crafted-secret",
    )


def grants(settings: Settings, *args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env=settings_env(settings))
    assert "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_status_shows_the_fleet_beside_malformed_state(settings: Settings) -> None:
    result = grants(settings, "status")

    assert result.exit_code == 0
    assert "celery@good" in result.stdout
    assert "not_found 1" in result.stdout
    assert "unknown 6" in result.stdout


def test_status_json_shows_the_fleet_beside_malformed_state(settings: Settings) -> None:
    result = grants(settings, "status", "--json")

    assert result.exit_code == 0
    status = json.loads(result.stdout)
    assert [w["hostname"] for w in status["workers"]] == [
        "celery@good",
        "celery@types",
    ]
    assert status["dead_by_code"] == {"unknown": UNREADABLE_LETTERS, "not_found": 1}
    assert [b["batch_id"] for b in status["batches"]] == [GOOD_BATCH]


def test_dlq_list_lists_readable_letters_and_marks_the_others(settings: Settings) -> None:
    result = grants(settings, "dlq", "list")

    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == UNREADABLE_LETTERS + 1
    good = next(r for r in rows if r["request_id"] == GOOD_DEAD)
    assert good["error_code"] == "not_found" and "unreadable" not in good
    unreadable = {r["request_id"]: r["unreadable"] for r in rows if "unreadable" in r}
    assert unreadable["dead-not-json"] == "not JSON"
    assert unreadable["dead-list"] == "JSON list, not an object"
    assert unreadable["no-dead-field"] == "no JSON in the entry"


def test_dlq_replay_all_refuses_unreadable_letters_and_replays_the_readable(
    settings: Settings,
) -> None:
    result = grants(settings, "dlq", "replay", "--all")

    assert result.exit_code == 1  # some invalid (docs/cli.md)
    rows = {r["request_id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows[GOOD_DEAD]["action"] == "replayed"
    assert rows["dead-not-json"]["action"] == "invalid"
    assert rows["dead-not-json"]["reason"].startswith("unreadable: not JSON")
    assert len(rows) == UNREADABLE_LETTERS + 1


def test_dlq_purge_all_purges_every_letter(settings: Settings, redis_client: redis.Redis) -> None:
    result = grants(settings, "dlq", "purge", "--all", "--yes")

    assert result.exit_code == 0
    assert f"{UNREADABLE_LETTERS + 1} purged" in result.stderr
    assert redis_client.xlen(Keys(settings.grants_key_prefix).dead) == 0


def test_results_lists_outcomes_and_names_each_skipped_entry(settings: Settings) -> None:
    result = grants(settings, "results")

    assert result.exit_code == 0
    ids = [json.loads(line)["request_id"] for line in result.stdout.splitlines()]
    assert ids == [GOOD_RESULT]
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 5
    assert any("unreadable, no outcome in the entry" in line for line in skipped)


@pytest.mark.parametrize("args", [("batch", "list"), ("batch", "status", JUNK_BATCH)])
def test_batch_commands_name_unreadable_ledger_fields(settings: Settings, args: Any) -> None:
    result = grants(settings, *args)

    assert result.exit_code == 0
    unreadable = "created, failed, first_enqueued_ms, last_outcome_ms, queued, total"
    assert f"{JUNK_BATCH}: 0/0 ended" in result.stdout
    assert f"(unreadable: {unreadable})" in result.stdout
    if args[1] == "list":
        assert GOOD_BATCH in result.stdout
