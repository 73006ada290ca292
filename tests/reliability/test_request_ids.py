"""Request ids are idempotency keys, and dead letters are replayed exactly once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import redis
from click.testing import CliRunner, Result

from grant_worker.config.settings import Settings
from grant_worker.worker.cli.main import cli
from grant_worker.worker.client.dead_letters import DeadLetters, ReplayResult
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import next_client_id
from tests.reliability.checks import outcomes_by_request
from tests.reliability.test_crash_recovery import wait_until

API = "https://api.example.com/"


def grants(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=settings_env(settings))


def dead_ids(client: redis.Redis, key: str) -> list[str]:
    return [fields["request_id"] for _id, fields in client.xrange(key)]


def test_a_reused_id_with_another_request_is_rejected_and_the_original_stays(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
) -> None:
    start_worker(settings)
    owner, other = next_client_id(), next_client_id()
    original = {"request_id": "reused-1", "grant": {"client_id": owner, "audience": API}}
    with GrantClient(settings) as client:
        first = client.wait(client.submit(original), timeout_s=30)
        assert first.status == "created"
        client.submit({"request_id": "reused-1", "grant": {"client_id": other, "audience": API}})
        wait_until(
            lambda: len(outcomes_by_request(redis_client, client.keys.results)["reused-1"]) == 2,
            30,
            "the reused id's answer",
        )
        # The same request again: the recorded outcome, no call, nothing new on the stream.
        client.submit(original)
        wait_until(lambda: redis_client.llen(settings.grants_queue) == 0, 30, "queue drained")
        assert client.outcome("reused-1") == first
    answers = outcomes_by_request(redis_client, client.keys.results)["reused-1"]
    assert [a.status for a in answers] == ["created", "rejected"]
    error = answers[1].error
    assert error is not None and error.code == "request_id_reused"
    assert owner in error.message and "ended created" in error.message
    assert dead_ids(redis_client, client.keys.dead) == ["reused-1"]
    assert [g["client_id"] for g in emulator.admin.grants()] == [owner]


def test_two_requests_in_flight_under_one_id_one_is_worked_the_other_rejected(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
) -> None:
    settings = settings_factory()
    start_worker(settings, hostname="ids-1@test")
    start_worker(settings, hostname="ids-2@test")
    emulator.admin.set_faults(latency_ms=300)
    owners = [next_client_id() for _ in range(2)]
    with GrantClient(settings) as client:
        client.submit_many(
            [
                {"request_id": "contested", "grant": {"client_id": o, "audience": API}}
                for o in owners
            ]
        )
        wait_until(
            lambda: (
                len(outcomes_by_request(redis_client, client.keys.results).get("contested", []))
                == 2
            ),
            30,
            "both answered",
        )
        recorded = client.outcome("contested")
    answers = outcomes_by_request(redis_client, client.keys.results)["contested"]
    assert sorted(a.status for a in answers) == ["created", "rejected"]
    (rejected,) = [a for a in answers if a.status == "rejected"]
    assert rejected.error is not None and rejected.error.code == "request_id_reused"
    assert recorded is not None and recorded.status == "created" and recorded.grant is not None
    # The id belongs to the request that was worked on, and only that one reached Auth0.
    winner = recorded.grant["client_id"]
    assert rejected.error.details is not None
    assert rejected.error.details["earlier_request"]["grant"]["client_id"] == winner
    assert [g["client_id"] for g in emulator.admin.grants()] == [winner]


def test_submit_refuses_a_used_id_saying_what_it_was_and_how_it_ended(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(settings)
    owner = next_client_id()
    done = grants(
        settings, "submit", "--audience", API, "--client-id", owner, "--scope", "read:a",
        "--request-id", "cli-used", "--wait",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    failed = grants(
        settings, "submit", "--audience", "https://nowhere.example.com/",
        "--client-id", owner, "--request-id", "cli-failed", "--wait",
    )  # fmt: skip
    assert failed.exit_code == 1
    again = grants(
        settings, "submit", "--audience", API, "--client-id", next_client_id(),
        "--request-id", "cli-used",
    )  # fmt: skip
    assert again.exit_code == 1
    assert f"{owner} on {API}" in again.stderr and "read:a" in again.stderr
    assert "it ended created" in again.stderr
    retry = grants(
        settings, "submit", "--audience", "https://nowhere.example.com/",
        "--client-id", owner, "--request-id", "cli-failed",
    )  # fmt: skip
    # The same request again: its recorded outcome, and how to really retry it.
    assert retry.exit_code == 1
    assert json.loads(retry.stdout.splitlines()[1])["error"]["code"] == "not_found"
    assert "grants dlq replay cli-failed" in retry.stderr


def test_two_replays_at_once_replay_each_letter_exactly_once(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: redis.Redis,
    figures: Callable[..., None],
) -> None:
    start_worker(settings)
    unknown = "https://nowhere.example.com/"
    with GrantClient(settings) as client:
        ids = client.submit_many(
            [{"grant": {"client_id": next_client_id(), "audience": unknown}} for _ in range(20)]
        )
        list(client.wait_many(ids, timeout_s=60))
    assert sorted(dead_ids(redis_client, client.keys.dead)) == sorted(ids)
    both_listed = threading.Barrier(2)
    results: list[ReplayResult] = []

    def replay_all() -> None:
        with GrantClient(settings) as own:
            dead = DeadLetters(own)
            letters = list(dead.all())
            both_listed.wait(timeout=30)
            results.extend(dead.replay(letters))

    threads = [threading.Thread(target=replay_all) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    actions = [r.action for r in results]
    assert actions.count("replayed") == 20 and actions.count("skipped") == 20
    wait_until(
        lambda: (
            all(
                len(found) == 2
                for found in outcomes_by_request(redis_client, client.keys.results).values()
            )
            and redis_client.llen(settings.grants_queue) == 0
            and not redis_client.hlen(client.keys.unacked)
        ),
        60,
        "every replay answered",
    )
    counts = {r: len(o) for r, o in outcomes_by_request(redis_client, client.keys.results).items()}
    assert counts == {request_id: 2 for request_id in ids}
    assert sorted(dead_ids(redis_client, client.keys.dead)) == sorted(ids)
    figures(letters=20, concurrent_replays=2, enqueued=actions.count("replayed"))
