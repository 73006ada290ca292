"""The pure parts of a bulk run: the plan's decisions, the per-row report, the summary, the
progress line, and the ledger state of an outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grant_worker.tasks.messages.models import ErrorInfo, Grant, Outcome
from grant_worker.tasks.outcomes.batches import state_of
from grant_worker.worker.cli.bulk.plan import plan_rows, summarise
from grant_worker.worker.cli.bulk.report import report_lines, summary
from grant_worker.worker.cli.bulk.rows import Checked, check_file
from grant_worker.worker.cli.progress import progress_line
from grant_worker.worker.cli.submit import drift_note

API = "https://api/"


def checked_rows(tmp_path: Path, *rows: dict[str, Any] | str) -> Checked:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return check_file(path, "jsonl", batch_id="B")


def row(client_id: str, *scope: str, on_conflict: str = "keep") -> dict[str, Any]:
    grant = {"client_id": client_id, "audience": API, "scope": list(scope)}
    return {"grant": grant, "on_conflict": on_conflict}


def outcome(request_id: str, status: str, **fields: Any) -> Outcome:
    at = "2026-11-27T00:00:00.000Z"
    return Outcome(request_id=request_id, status=status, received_at=at, finished_at=at, **fields)  # type: ignore[arg-type]


def test_the_plan_says_create_exists_differs_invalid_and_duplicate_per_row(tmp_path: Path) -> None:
    checked = checked_rows(
        tmp_path,
        row("new", "read:a"),
        row("same", "read:a"),
        row("drifted", "read:a", "write:a"),
        {"grant": {"audience": API}},
        row("new", "read:a"),
        row("drifted", "read:a", "write:a", on_conflict="merge"),
    )
    existing = {
        API: [
            Grant(id="g1", client_id="same", audience=API, scope=["read:a"]),
            Grant(id="g2", client_id="drifted", audience=API, scope=["read:a"]),
        ]
    }
    planned = {p.line: p for p in plan_rows(checked, existing)}
    assert (planned[1].action, planned[1].then) == ("create", "create")
    assert (planned[2].action, planned[2].then) == ("exists", "nothing")
    assert (planned[3].action, planned[3].then) == ("exists_differs", "nothing")
    assert planned[3].differences == {"scope": {"missing": ["write:a"], "extra": []}}
    assert planned[4].action == "invalid"
    assert "exactly one of client_id or default_for" in planned[4].problems[0]
    assert (planned[5].action, planned[5].duplicate_of) == ("duplicate", 1)
    assert (planned[6].then, planned[6].patch) == ("update", {"scope": ["read:a", "write:a"]})
    counts = summarise(list(planned.values()))
    assert (counts["create"], counts["exists"], counts["exists_differs"]) == (1, 1, 2)
    assert (counts["invalid"], counts["duplicate"], counts["would_update"]) == (1, 1, 1)


def test_a_later_row_for_a_grant_an_earlier_row_creates_is_planned_as_existing(
    tmp_path: Path,
) -> None:
    checked = checked_rows(
        tmp_path, row("svc", "read:a"), row("svc", "read:a", "write:a", on_conflict="fail")
    )
    first, second = plan_rows(checked, {API: []})
    assert first.action == "create"
    assert (second.action, second.then) == ("exists_differs", "fail")


def test_the_report_has_a_line_per_input_line_with_what_people_act_on(tmp_path: Path) -> None:
    checked = checked_rows(
        tmp_path,
        row("a", "read:a"),
        row("b", "read:a"),
        "not json",
        row("c", "read:a"),
        row("a", "read:a"),
        row("d", "read:a"),
    )
    ids = {r.request.grant.client_id: r.request_id for r in checked.rows}
    differs = {"scope": {"missing": ["read:a"], "extra": []}}
    outcomes = {
        ids["a"]: outcome(ids["a"], "exists", differences=differs),
        ids["b"]: outcome(
            ids["b"], "failed", error=ErrorInfo(code="not_found", message="No resource")
        ),
    }
    sent = {ids["a"], ids["b"], ids["c"]}
    lines = {entry["line"]: entry for entry in report_lines(checked, outcomes, sent)}
    assert sorted(lines) == [1, 2, 3, 4, 5, 6]
    assert lines[1] == {
        "line": 1,
        "request_id": ids["a"],
        "batch_id": "B",
        "client_id": "a",
        "default_for": None,
        "audience": API,
        "status": "exists_differs",
        "error_code": None,
        "error_message": None,
        "differences": differs,
    }
    assert (lines[2]["error_code"], lines[2]["error_message"]) == ("not_found", "No resource")
    assert (lines[3]["status"], lines[3]["error_code"]) == ("invalid", "invalid_request")
    assert lines[4]["status"] == "pending"
    assert (lines[5]["status"], lines[5]["duplicate_of"]) == ("exists_differs", 1)
    assert lines[6]["status"] == "not_sent"

    counts = summary(checked, outcomes, sent)
    assert counts["rows"] == 4
    assert (counts["exists_differs"], counts["failed"], counts["pending"]) == (1, 1, 1)
    assert (counts["not_sent"], counts["invalid"], counts["duplicates"]) == (1, 1, 1)
    assert counts["error_codes"] == {"not_found": 1}


def test_a_progress_line_says_done_of_total_rate_and_eta() -> None:
    assert progress_line("finished", 100, 1000, 50.0) == "finished 100/1000 (50.0/s, ETA 18 s)"
    assert progress_line("finished", 0, 1000, None) == "finished 0/1000 (ETA unknown)"
    assert progress_line("enqueued", 10, 10_000, 2.0).endswith("ETA 1 h 23 min)")


def test_the_ledger_tells_drift_and_cancellation_apart() -> None:
    assert state_of(outcome("r", "exists")) == "exists"
    assert state_of(outcome("r", "exists", differences={"scope": {}})) == "exists_differs"
    cancelled = ErrorInfo(code="cancelled", message="withdrawn")
    assert state_of(outcome("r", "rejected", error=cancelled)) == "cancelled"
    invalid = ErrorInfo(code="invalid_request", message="bad")
    assert state_of(outcome("r", "rejected", error=invalid)) == "rejected"


def test_the_drift_note_names_what_differs_and_the_way_to_merge() -> None:
    note = drift_note(
        {
            "scope": {"missing": ["export:reports"], "extra": []},
            "organization_usage": {"requested": "allow", "actual": "deny"},
        }
    )
    assert "scope missing ['export:reports']" in note
    assert "organization_usage is 'deny', requested 'allow'" in note
    assert "--on-conflict merge" in note
