"""`grants bulk` as a batch: resumed on rerun, planned before writing, stopped cleanly by real
signals, reported row by row, tracked and cancelled through its ledger. Real Redis, the
emulator, real worker processes and real `grants bulk` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from click.testing import CliRunner, Result

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.api import PAGE_SIZE, make_api
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.outcomes.batches import read_batch
from grant_worker.worker.cli.main import cli
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import next_client_id

API = "https://api.example.com/"
REPORTS = "https://reports.example.com/"


def grants(settings: Settings, *args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={**settings_env(settings), **env})


def posts(emulator: Any) -> int:
    return sum(emulator.admin.stats()["posts_by_grant_key"].values())


def csv_file(tmp_path: Path, rows: list[str], name: str = "grants.csv") -> Path:
    path = tmp_path / name
    path.write_text("client_id,audience,scope,on_conflict\n" + "\n".join(rows) + "\n")
    return path


def summary_of(result: Result) -> dict[str, Any]:
    return dict(json.loads(result.stdout.splitlines()[-1]))


def bulk_process(settings: Settings, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "grant_worker.worker", "bulk", *args],
        env={**os.environ, **settings_env(settings), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_rerunning_a_file_resumes_it_without_sending_a_row_again(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    start_worker(settings)
    existing = next_client_id()
    with GrantClient(settings) as client:
        client.wait(
            client.submit({"grant": {"client_id": existing, "audience": API}}), timeout_s=30
        )
    rows = [f"{next_client_id()},{API},read:a write:a," for _ in range(4)]
    rows.append(f"{next_client_id()},{API},read:a,fail")  # created by run 1: no conflict in run 2
    rows.append(f"{existing},{API},read:a,")  # exists, and lacks read:a: drift
    rows.append(f"{next_client_id()},https://nowhere.example.com/,,")  # fails: not_found
    path = csv_file(tmp_path, rows)

    first = grants(settings, "bulk", str(path), "--wait")
    assert first.exit_code == 1, first.output
    posts_after_first = posts(emulator)
    results_after_first = redis_client.xlen(f"{settings.grants_key_prefix}results")
    dead_after_first = redis_client.xlen(f"{settings.grants_key_prefix}dead")

    again = grants(settings, "bulk", str(path), "--wait")
    assert again.stderr.splitlines()[0] == first.stderr.splitlines()[0]  # "batch b-…", first
    assert "resuming: 7 rows already ended, 0 still queued from an earlier run, 0 to send" in (
        again.stderr
    )
    assert posts(emulator) == posts_after_first
    assert redis_client.xlen(f"{settings.grants_key_prefix}results") == results_after_first
    assert redis_client.xlen(f"{settings.grants_key_prefix}dead") == dead_after_first
    summary = summary_of(again)
    assert summary == {**summary_of(first)}
    assert (summary["created"], summary["exists_differs"], summary["failed"]) == (5, 1, 1)
    assert "1 grants exist but differ" in again.stderr

    view = read_batch(redis_client, GrantClient(settings).keys, summary["batch_id"])
    assert view is not None
    assert (view.total, view.created, view.exists_differs, view.failed) == (7, 5, 1, 1)
    assert view.pending == 0


def test_rows_an_earlier_run_queued_are_waited_for_not_sent_again(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    path = csv_file(tmp_path, [f"{next_client_id()},{API},read:a," for _ in range(5)])
    assert grants(settings, "bulk", str(path)).exit_code == 0  # no worker yet: all stay queued
    assert redis_client.llen(settings.grants_queue) == 5

    rerun = grants(settings, "bulk", str(path))
    assert "0 rows already ended, 5 still queued from an earlier run, 0 to send" in rerun.stderr
    assert redis_client.llen(settings.grants_queue) == 5

    start_worker(settings)
    waited = grants(settings, "bulk", str(path), "--wait")
    assert waited.exit_code == 0, waited.output
    assert summary_of(waited)["created"] == 5
    assert posts(emulator) == 5


def test_ctrl_c_or_sigterm_while_waiting_stops_with_a_summary_a_report_and_exit_130(
    settings: Settings, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, [f"{next_client_id()},{API},read:a," for _ in range(3)])
    for signum in (signal.SIGINT, signal.SIGTERM):
        report = tmp_path / f"report-{signum}.jsonl"
        process = bulk_process(settings, str(path), "--wait", "--report", str(report))
        assert process.stdout is not None
        batch_line = process.stdout.readline()  # printed once everything is enqueued
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 130, stderr
        batch_id = batch_line.strip()
        assert stderr.splitlines()[0] == f"batch {batch_id}"
        assert f"resume with: grants bulk {path} --batch-id {batch_id} --wait --report" in stderr
        assert json.loads(stdout.splitlines()[-1])["pending"] == 3
        lines = [json.loads(line) for line in report.read_text().splitlines()]
        assert [(entry["line"], entry["status"]) for entry in lines] == [
            (2, "pending"),
            (3, "pending"),
            (4, "pending"),
        ]


def test_an_interrupted_enqueue_says_exactly_what_it_queued_and_the_rerun_sends_the_rest(
    settings: Settings, tmp_path: Path, redis_client: redis.Redis
) -> None:
    rows = 20_000
    path = tmp_path / "many.jsonl"
    path.write_text(
        "".join(
            json.dumps({"grant": {"client_id": f"c-{i}", "audience": API}}) + "\n"
            for i in range(rows)
        )
    )
    process = bulk_process(settings, str(path))
    wait_for(lambda: redis_client.llen(settings.grants_queue) > 0)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    summary = json.loads(stdout.splitlines()[-1])
    queued = redis_client.llen(settings.grants_queue)
    assert summary["pending"] == queued
    assert summary["not_sent"] == rows - queued
    view = read_batch(redis_client, GrantClient(settings).keys, summary["batch_id"])
    assert view is not None and (view.total, view.queued) == (queued, queued)

    rerun = grants(settings, "bulk", str(path))
    assert rerun.exit_code == 0, rerun.output
    assert redis_client.llen(settings.grants_queue) == rows
    with GrantClient(settings) as client:
        ids = {
            json.loads(item)["headers"]["id"]
            for item in redis_client.lrange(settings.grants_queue, 0, -1)
        }
        assert len(ids) == rows
        assert read_batch(client.redis, client.keys, summary["batch_id"]).queued == rows  # type: ignore[union-attr]


def test_the_plan_reads_the_tenant_page_by_page_and_writes_nothing(
    settings: Settings, emulator: Any, tmp_path: Path, redis_client: redis.Redis
) -> None:
    api = make_api(settings, make_session(settings))
    clients = [next_client_id() for _ in range(PAGE_SIZE + 5)]
    for client_id in clients:
        api.create_grant({"client_id": client_id, "audience": REPORTS, "scope": ["read:reports"]})
    posts_before = posts(emulator)
    new = next_client_id()
    rows = [
        {"grant": {"client_id": new, "audience": REPORTS, "scope": ["read:reports"]}},
        {"grant": {"client_id": clients[0], "audience": REPORTS, "scope": ["read:reports"]}},
        {  # on the last page of the listing
            "grant": {"client_id": clients[-1], "audience": REPORTS, "scope": ["export:reports"]},
            "on_conflict": "merge",
        },
        {"grant": {"audience": REPORTS}},
    ]
    path = tmp_path / "plan.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")

    result = grants(settings, "bulk", str(path), "--plan")
    assert result.exit_code == 1, result.output  # line 4 is invalid: the run would refuse it
    *planned, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["line"], p["action"], p.get("then")) for p in planned] == [
        (1, "create", "create"),
        (2, "exists", "nothing"),
        (3, "exists_differs", "update"),
        (4, "invalid", None),
    ]
    assert planned[3]["audience"] == REPORTS
    assert planned[2]["differences"]["scope"] == {
        "missing": ["export:reports"],
        "extra": ["read:reports"],
    }
    assert (summary["create"], summary["exists"], summary["exists_differs"]) == (1, 1, 1)
    assert posts(emulator) == posts_before
    routes = emulator.admin.stats()["requests_by_route"]
    assert sum(n for route, n in routes.items() if route.startswith("GET")) >= 2  # two pages
    # Nothing in Redis but the pace's pacing state: no queue, no ledger, no outcomes.
    assert redis_client.llen(settings.grants_queue) == 0
    assert set(redis_client.scan_iter(f"{settings.grants_key_prefix}*")) <= {
        f"{settings.grants_key_prefix}pace"
    }


def test_skip_invalid_enqueues_the_valid_rows_and_writes_the_rejects(
    settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    start_worker(settings)
    long_field = "x" * 90
    path = tmp_path / "g.jsonl"
    rows = [
        {"grant": {"client_id": next_client_id(), "audience": API}},
        {"grant": {"client_id": "a", "audience": API, long_field: 1}},
        {"grant": {"client_id": next_client_id(), "audience": API}},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    rejects, report = tmp_path / "rejects.jsonl", tmp_path / "report.jsonl"

    result = grants(
        settings, "bulk", str(path), "--skip-invalid", "--rejects", str(rejects),
        "--wait", "--report", str(report),
    )  # fmt: skip
    assert result.exit_code == 1  # not everything was provisioned
    # The error line is whole, not wrapped at 80 columns.
    assert f"line 2: grant.{long_field}: unknown field (not allowed)\n" in result.stderr
    (reject,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert reject["line"] == 2
    assert reject["problems"] == [f"grant.{long_field}: unknown field (not allowed)"]
    statuses = [json.loads(line)["status"] for line in report.read_text().splitlines()]
    assert statuses == ["created", "invalid", "created"]


def test_usage_errors_exit_2(settings: Settings, tmp_path: Path) -> None:
    path = csv_file(tmp_path, [f"svc-1,{API},,"])
    assert grants(settings, "bulk", str(path), "--report", "r.jsonl").exit_code == 2
    assert grants(settings, "bulk", str(path), "--skip-invalid").exit_code == 2
    assert grants(settings, "bulk", str(path), "--wait", "--timeout", "0").exit_code == 2
    assert grants(settings, "submit", "--audience", API, "--client-id", "c", "--wait",
                  "--timeout", "-5").exit_code == 2  # fmt: skip


def test_on_timeout_the_pending_rows_are_listed_and_reported(
    settings: Settings, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, [f"svc-1,{API},,", f"svc-2,{API},,"])
    report = tmp_path / "report.jsonl"
    result = grants(
        settings, "bulk", str(path), "--wait", "--timeout", "0.5", "--report", str(report)
    )
    assert result.exit_code == 3
    assert "line 2: pending " in result.stderr and "line 3: pending " in result.stderr
    assert summary_of(result)["pending"] == 2
    assert [json.loads(line)["status"] for line in report.read_text().splitlines()] == [
        "pending",
        "pending",
    ]


def test_progress_is_a_plain_line_every_few_seconds_when_not_on_a_terminal(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    tmp_path: Path,
) -> None:
    start_worker(settings)
    emulator.admin.set_faults(latency_ms=100)
    path = csv_file(tmp_path, [f"{next_client_id()},{API},," for _ in range(12)])
    process = bulk_process(settings, str(path), "--wait", GRANTS_PROGRESS_INTERVAL_S="0.2")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    progress = [line for line in stderr.splitlines() if line.startswith("finished ")]
    assert len(progress) >= 2
    assert progress[-1].startswith("finished 12/12 (")
    assert "/s, ETA" in progress[-1]
    assert "\r" not in stderr and "\x1b[" not in stderr


def test_batch_status_and_cancel_withdraw_the_queued_requests_for_a_later_replay(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    path = csv_file(tmp_path, [f"{next_client_id()},{API},read:a," for _ in range(4)])
    assert grants(settings, "bulk", str(path), "--batch-id", "to-cancel").exit_code == 0
    other = csv_file(tmp_path, [f"{next_client_id()},{API},,"], name="other.csv")
    assert grants(settings, "bulk", str(other), "--batch-id", "keep-me").exit_code == 0

    status = json.loads(grants(settings, "batch", "status", "to-cancel", "--json").stdout)
    assert (status["total"], status["queued"], status["in_flight"]) == (4, 4, 0)

    dry = grants(settings, "batch", "cancel", "to-cancel", "--dry-run")
    assert len(dry.stdout.splitlines()) == 4
    assert redis_client.llen(settings.grants_queue) == 5

    cancelled = grants(settings, "batch", "cancel", "to-cancel")
    assert cancelled.exit_code == 0
    assert "4 withdrawn" in cancelled.stderr
    assert redis_client.llen(settings.grants_queue) == 1  # the other batch's message stays
    status = json.loads(grants(settings, "batch", "status", "to-cancel", "--json").stdout)
    assert (status["cancelled"], status["queued"], status["pending"]) == (4, 0, 0)
    results = grants(settings, "results", "--batch-id", "to-cancel").stdout.splitlines()
    assert {(json.loads(r)["status"], json.loads(r)["error"]["code"]) for r in results} == {
        ("rejected", "cancelled")
    }

    start_worker(settings)
    replayed = grants(settings, "dlq", "replay", "--batch-id", "to-cancel")
    assert replayed.exit_code == 0, replayed.output
    waited = grants(settings, "bulk", str(path), "--batch-id", "to-cancel", "--wait")
    assert waited.exit_code == 0, waited.output
    status = json.loads(grants(settings, "batch", "status", "to-cancel", "--json").stdout)
    assert (status["created"], status["cancelled"], status["total"]) == (4, 0, 4)
    assert (
        "to-cancel: 4/4 ended (4 created)"
        in grants(settings, "batch", "status", "to-cancel").stdout
    )


def run_on_a_terminal(settings: Settings, *args: str, answer: bytes = b"") -> tuple[int, str]:
    """`grants ARGS` with stdin, stdout and stderr on a pseudo-terminal, as a person runs it."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "grant_worker.worker", *args],
        env={**os.environ, **settings_env(settings), "COLUMNS": "200"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    if answer:
        os.write(leader, answer)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process has ended
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return process.wait(timeout=30), output.decode(errors="replace")


def test_on_a_terminal_the_plan_is_a_table_and_purge_asks_first(
    settings: Settings, emulator: Any, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, [f"{next_client_id()},{API},read:a,"])
    code, output = run_on_a_terminal(settings, "bulk", str(path), "--plan")
    assert code == 0, output
    assert "plan of batch" in output and "create" in output
    assert '"create": 1' in output  # the JSON summary follows the table

    with GrantClient(settings) as client:
        client.submit(
            {"grant": {"client_id": "c", "audience": API, "scope": ["a"]}, "batch_id": "tty"}
        )
    assert grants(settings, "batch", "cancel", "tty").exit_code == 0  # one dead letter
    code, output = run_on_a_terminal(settings, "dlq", "purge", "--batch-id", "tty", answer=b"n\n")
    assert code == 1
    assert "Purge 1 dead letters for good?" in output and "nothing purged" in output
    assert len(grants(settings, "dlq", "list", "--batch-id", "tty").stdout.splitlines()) == 1
