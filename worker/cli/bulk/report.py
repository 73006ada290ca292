"""What `grants bulk` tells people about a batch: a report line per row and one summary.

Pure functions over the checked file and the outcomes known so far. The same keys appear in
the report, the summary and the other commands' JSON (`request_id`, `batch_id`, `status`,
`error_code`, `error_message`, `differences`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from grant_worker.tasks.messages.models import GrantRequest, Outcome
from grant_worker.tasks.outcomes.batches import STATES as LEDGER_STATES
from grant_worker.worker.cli.bulk.rows import Checked

# Row states beyond an outcome's status: enqueued and not yet ended; never enqueued (the run
# was stopped first); invalid (left out with --skip-invalid); "exists_differs" is an `exists`
# whose grant does not match the request (drift).
PENDING = "pending"
NOT_SENT = "not_sent"
INVALID = "invalid"
# How a row ended, as the batch ledger counts it (`cancelled` is a withdrawal, never a run's),
# then the row states a run adds.
SUMMARY_STATES = (
    *(state for state in LEDGER_STATES if state != "cancelled"),
    PENDING,
    NOT_SENT,
    INVALID,
)


def row_state(outcome: Outcome | None, *, sent: bool) -> str:
    if outcome is None:
        return PENDING if sent else NOT_SENT
    if outcome.status == "exists" and outcome.differences:
        return "exists_differs"
    return outcome.status


def report_lines(
    checked: Checked, outcomes: dict[str, Outcome], sent: set[str]
) -> list[dict[str, Any]]:
    """One entry per input line (valid, duplicate and invalid rows), in line order."""
    lines: list[dict[str, Any]] = []
    for row in checked.rows:
        outcome = outcomes.get(row.request_id)
        lines.append(_line(row.line, row.request, outcome, sent=row.request_id in sent))
    for duplicate in checked.duplicates:
        first = duplicate.first
        outcome = outcomes.get(first.request_id)
        entry = _line(duplicate.line, first.request, outcome, sent=first.request_id in sent)
        entry["duplicate_of"] = first.line
        lines.append(entry)
    for problem in checked.invalid:
        lines.append(
            {
                **_blank(problem.line),
                **problem.identity(),
                "status": INVALID,
                "error_code": "invalid_request",
                "error_message": "; ".join(problem.problems),
            }
        )
    return sorted(lines, key=lambda entry: entry["line"])


def summary(checked: Checked, outcomes: dict[str, Outcome], sent: set[str]) -> dict[str, Any]:
    """Counts of the rows that will be sent (duplicates counted once), by state and by error
    code, plus the duplicates and invalid rows that were left out."""
    states = Counter(
        row_state(outcomes.get(row.request_id), sent=row.request_id in sent) for row in checked.rows
    )
    states[INVALID] = len(checked.invalid)
    codes = Counter(
        outcome.error.code
        for row in checked.rows
        if (outcome := outcomes.get(row.request_id)) is not None and outcome.error is not None
    )
    return {
        "batch_id": checked.batch_id,
        "rows": len(checked.rows),
        **{state: states.get(state, 0) for state in SUMMARY_STATES},
        "duplicates": len(checked.duplicates),
        "error_codes": dict(sorted(codes.items())),
    }


def write_report(path: Path, lines: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for entry in lines:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


def write_rejects(path: Path, checked: Checked) -> None:
    """The invalid rows with their line and reasons, as JSON lines (`row`: what was read)."""
    with path.open("w", encoding="utf-8") as handle:
        for problem in checked.invalid:
            entry = {"line": problem.line, "problems": problem.problems, "row": problem.raw}
            handle.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")


def _blank(line: int) -> dict[str, Any]:
    return {
        "line": line,
        "request_id": None,
        "batch_id": None,
        "client_id": None,
        "default_for": None,
        "audience": None,
        "status": None,
        "error_code": None,
        "error_message": None,
        "differences": None,
    }


def _line(
    line: int, request: GrantRequest, outcome: Outcome | None, *, sent: bool
) -> dict[str, Any]:
    entry = _blank(line)
    entry.update(
        request_id=request.request_id,
        batch_id=request.batch_id,
        client_id=request.grant.client_id if request.grant else None,
        default_for=request.grant.default_for if request.grant else None,
        audience=request.grant.audience if request.grant else None,
        status=row_state(outcome, sent=sent),
    )
    if request.action == "revoke":
        entry.update(action="revoke", grant_id=request.grant_id)
    if outcome is not None:
        entry["differences"] = outcome.differences
        if outcome.error is not None:
            entry["error_code"] = outcome.error.code
            entry["error_message"] = outcome.error.message
    return entry
