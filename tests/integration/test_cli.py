"""The `grants` command as pipelines and operators use it: output and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from grant_worker.config.settings import Settings
from grant_worker.worker.cli.main import cli
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import settings_env
from tests.integration.conftest import next_client_id, push_raw, raw_celery_message

API = "https://api.example.com/"


@pytest.fixture
def settings(shared_settings: Settings, emulator: Any) -> Settings:
    # The emulator reset for this test: another test of this process may have left faults.
    return shared_settings


def grants(settings: Settings, *args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={**settings_env(settings), **env})


def test_submit_wait_prints_the_outcome_and_exits_0_when_created(settings: Settings) -> None:
    result = grants(
        settings, "submit", "--audience", API, "--client-id", next_client_id(),
        "--scope", "read:a", "--scope", "write:a", "--request-id", "cli-1", "--wait",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    request_id, outcome_line = result.stdout.splitlines()
    outcome = json.loads(outcome_line)
    assert request_id == "cli-1"
    assert outcome["status"] == "created"
    assert outcome["grant"]["scope"] == ["read:a", "write:a"]


def test_submit_wait_exits_1_when_the_grant_fails(settings: Settings) -> None:
    result = grants(
        settings, "submit", "--audience", "https://nowhere.example.com/",
        "--client-id", next_client_id(), "--wait",
    )  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.stdout.splitlines()[1])["error"]["code"] == "not_found"


def test_submit_refuses_an_invalid_request_with_exit_2_and_sends_nothing(
    settings: Settings, redis_client: Any
) -> None:
    result = grants(
        settings, "submit", "--audience", API, "--client-id", "c",
        "--default-for", "third_party_clients",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "exactly one of client_id or default_for" in result.output
    assert redis_client.llen(settings.grants_queue) == 0


def test_submit_wait_exits_3_when_no_outcome_arrives_in_time(
    settings_factory: Callable[..., Settings],
) -> None:
    idle = settings_factory()  # a queue no worker consumes
    result = grants(
        idle, "submit", "--audience", API, "--client-id", "c", "--wait", "--timeout", "0.5"
    )
    assert result.exit_code == 3
    assert "timeout" in result.output


def test_results_filters_by_request_id(settings: Settings) -> None:
    grants(settings, "submit", "--audience", API, "--client-id", next_client_id(),
           "--request-id", "cli-results", "--wait")  # fmt: skip
    result = grants(settings, "results", "--request-id", "cli-results")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["request_id"] for line in lines] == ["cli-results"]


def test_a_config_error_exits_2_naming_the_setting(settings: Settings) -> None:
    result = grants(settings, "worker", AUTH0_DOMAIN="http://tenant.example.com")
    assert result.exit_code == 2
    assert result.output.startswith("error: configuration: AUTH0_DOMAIN: plain http")
    assert "auth0_domain" not in result.output


def test_bulk_checks_every_row_and_enqueues_nothing_when_one_is_bad(
    settings: Settings, tmp_path: Path, redis_client: Any
) -> None:
    rows = [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(3)]
    rows.append({"grant": {"audience": API}})
    path = tmp_path / "grants.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows))
    result = grants(settings, "bulk", str(path))
    assert result.exit_code == 1
    assert "line 4: grant: exactly one of client_id or default_for is required" in result.output
    assert redis_client.llen(settings.grants_queue) == 0


def test_bulk_wait_follows_a_csv_batch_to_a_summary_and_a_report(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "grants.csv"
    lines = ["client_id,audience,scope"]
    lines += [f"{next_client_id()},{API},read:a write:a" for _ in range(25)]
    path.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.jsonl"
    result = grants(
        settings, "bulk", str(path), "--batch-id", "cli-batch", "--wait", "--report", str(report)
    )
    assert result.exit_code == 0, result.output
    outcomes = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(outcomes) == 25
    assert {o["status"] for o in outcomes} == {"created"}
    assert {o["batch_id"] for o in outcomes} == {"cli-batch"}
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["batch_id"], summary["rows"], summary["created"]) == ("cli-batch", 25, 25)


def test_dlq_list_show_replay_and_purge(
    settings: Settings, emulator: Any, redis_client: Any
) -> None:
    with GrantClient(settings) as client:
        missing = client.submit(
            {"grant": {"client_id": next_client_id(), "audience": "https://later.example.com/"}}
        )
        conflict_client = next_client_id()
        client.wait(
            client.submit({"grant": {"client_id": conflict_client, "audience": API}}), timeout_s=30
        )
        conflicted = client.submit(
            {"grant": {"client_id": conflict_client, "audience": API}, "on_conflict": "fail"}
        )
        client.wait(missing, timeout_s=30)
        client.wait(conflicted, timeout_s=30)

    listed = grants(settings, "dlq", "list", "--code", "not_found")
    assert listed.exit_code == 0
    (letter,) = [json.loads(line) for line in listed.stdout.splitlines() if missing in line]
    shown = grants(settings, "dlq", "show", letter["entry_id"])
    assert json.loads(shown.stdout)["request"]["grant"]["audience"] == "https://later.example.com/"

    dry = grants(settings, "dlq", "replay", missing, "--dry-run")
    assert json.loads(dry.stdout)["action"] == "would replay"
    assert redis_client.xlen(f"{settings.grants_key_prefix}dead") >= 2

    emulator.admin.add_resource_servers(
        [{"identifier": "https://later.example.com/", "name": "Later", "scopes": []}]
    )
    replayed = grants(settings, "dlq", "replay", missing)
    assert replayed.exit_code == 0
    with GrantClient(settings) as client:
        assert client.wait(missing, timeout_s=30).status == "created"

    assert grants(settings, "dlq", "replay").exit_code == 2  # nothing selected: usage error
    purged = grants(settings, "dlq", "purge", conflicted, "--yes")
    assert purged.exit_code == 0
    assert "1 purged" in purged.output
    remaining = grants(settings, "dlq", "list").stdout
    assert conflicted not in remaining and missing not in remaining


def test_submit_takes_every_field_of_the_request_and_splits_scope_lists(
    settings: Settings,
) -> None:
    result = grants(
        settings, "submit", "--audience", API, "--client-id", next_client_id(),
        "--scope", "read:reports,export:reports", "--scope", "read:reports write:reports",
        "--organization-usage", "allow", "--allow-any-organization",
        "--authorization-details-type", "payment_initiation", "--subject-type", "client",
        "--metadata", '{"ticket": "ONB-1"}', "--batch-id", "cli-fields", "--wait",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout.splitlines()[1])
    grant = outcome["grant"]
    assert grant["scope"] == ["read:reports", "export:reports", "write:reports"]
    assert (grant["organization_usage"], grant["allow_any_organization"]) == ("allow", True)
    assert grant["authorization_details_types"] == ["payment_initiation"]
    assert (outcome["metadata"], outcome["batch_id"]) == ({"ticket": "ONB-1"}, "cli-fields")


def test_submit_allow_all_scopes_is_a_flag(settings: Settings) -> None:
    result = grants(
        settings, "submit", "--audience", API, "--client-id", next_client_id(),
        "--allow-all-scopes", "--wait",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[1])["grant"]["allow_all_scopes"] is True


def test_submit_wait_shows_drift_on_stderr_and_points_to_merge_with_exit_0(
    settings: Settings,
) -> None:
    client_id = next_client_id()
    first = grants(settings, "submit", "--audience", API, "--client-id", client_id,
                   "--scope", "read:a", "--wait")  # fmt: skip
    assert first.exit_code == 0 and "drift" not in first.stderr
    again = grants(settings, "submit", "--audience", API, "--client-id", client_id,
                   "--scope", "read:a write:a", "--wait")  # fmt: skip
    assert again.exit_code == 0
    assert json.loads(again.stdout.splitlines()[1])["status"] == "exists"
    assert "drift: the grant exists but differs: scope missing ['write:a']" in again.stderr
    assert "--on-conflict merge" in again.stderr


def test_results_filter_by_status_since_and_limit(settings: Settings) -> None:
    batch = f"cli-results-{next_client_id()}"
    for audience in (API, API, "https://nowhere.example.com/"):
        grants(settings, "submit", "--audience", audience, "--client-id", next_client_id(),
               "--batch-id", batch, "--wait")  # fmt: skip

    def lines(*args: str) -> list[dict[str, Any]]:
        result = grants(settings, "results", "--batch-id", batch, *args)
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines()]

    assert [o["status"] for o in lines("--status", "failed")] == ["failed"]
    assert len(lines("--limit", "2")) == 2
    assert len(lines("--since", "10m")) == 3
    assert lines("--since", "2999-01-01T00:00:00Z") == []
    assert grants(settings, "results", "--since", "yesterday").exit_code == 2


def test_results_request_id_reads_the_request_record_not_the_stream(
    settings: Settings, redis_client: Any
) -> None:
    grants(settings, "submit", "--audience", API, "--client-id", next_client_id(),
           "--request-id", "cli-record", "--wait")  # fmt: skip
    results_key = f"{settings.grants_key_prefix}results"
    for entry_id, fields in redis_client.xrange(results_key):
        if fields["request_id"] == "cli-record":
            redis_client.xdel(results_key, entry_id)
    result = grants(settings, "results", "--request-id", "cli-record")
    assert [json.loads(line)["request_id"] for line in result.stdout.splitlines()] == ["cli-record"]


def test_following_results_starts_now_unless_from_start(settings: Settings) -> None:
    with GrantClient(settings) as client:
        client.wait(client.submit({"grant": {"client_id": next_client_id(), "audience": API},
                                   "request_id": "cli-old"}), timeout_s=30)  # fmt: skip
        following = client.results(follow=True)
        from_start = client.results(follow=True, from_start=True)
        assert next(from_start).request_id != "cli-new"  # the history comes first
        client.submit({"grant": {"client_id": next_client_id(), "audience": API},
                       "request_id": "cli-new"})  # fmt: skip
        assert next(following).request_id == "cli-new"


def test_dlq_filters_by_batch_and_purge_asks_or_needs_yes(settings: Settings) -> None:
    batch = f"cli-dlq-{next_client_id()}"
    for _ in range(2):
        grants(settings, "submit", "--audience", "https://nowhere.example.com/",
               "--client-id", next_client_id(), "--batch-id", batch, "--wait")  # fmt: skip
    listed = grants(settings, "dlq", "list", "--batch-id", batch)
    letters = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(letters) == 2
    assert set(letters[0]) >= {"entry_id", "request_id", "batch_id", "status", "error_code"}
    assert {letter["batch_id"] for letter in letters} == {batch}

    dry = grants(settings, "dlq", "replay", "--batch-id", batch, "--dry-run")
    assert [json.loads(line)["action"] for line in dry.stdout.splitlines()] == ["would replay"] * 2

    refused = grants(settings, "dlq", "purge", "--batch-id", batch)  # not a terminal, no --yes
    assert refused.exit_code == 2
    assert "--yes" in refused.output
    dry = grants(settings, "dlq", "purge", "--batch-id", batch, "--dry-run")
    assert [json.loads(line)["entry_id"] for line in dry.stdout.splitlines()] == [
        letter["entry_id"] for letter in letters
    ]
    assert len(grants(settings, "dlq", "list", "--batch-id", batch).stdout.splitlines()) == 2
    purged = grants(settings, "dlq", "purge", "--batch-id", batch, "--yes")
    assert "2 purged" in purged.stderr
    assert grants(settings, "dlq", "list", "--batch-id", batch).stdout == ""


def test_version_is_printed(settings: Settings) -> None:
    result = grants(settings, "--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("grants, version ")


def test_a_scope_item_with_white_space_from_any_producer_is_rejected_by_the_worker(
    settings: Settings,
) -> None:
    request = {
        "request_id": "cli-scope-space",
        "grant": {"client_id": next_client_id(), "audience": API, "scope": ["read:a write:a"]},
    }
    body = json.dumps([[], {"request": request}, {}]).encode()
    with GrantClient(settings) as client:
        push_raw(
            client.redis,
            settings.grants_queue,
            raw_celery_message(
                queue=settings.grants_queue, task="grants.create",
                task_id="cli-scope-space", body=body,
            ),
        )  # fmt: skip
        outcome = client.wait("cli-scope-space", timeout_s=30)
    assert outcome.status == "rejected"
    assert outcome.error is not None and outcome.error.code == "invalid_request"
    assert "grant.scope[0]: must not contain white space" in outcome.error.message
