"""`grants bulk FILE --plan`: what a file would do to the tenant, read from it, written nowhere.

The grants of every audience the file names are listed from the tenant (checkpoint pages, each
call paced by the fleet's pace, so a plan never spends the rate the workers need), then each
row is decided by the same pure rules the worker applies on a 409 (`tasks.conflicts`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import click
from rich.console import Console
from rich.table import Table

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.api import TOKEN, CallHooks, ManagementApi, make_api
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.conflicts import differences, effective_mode, pick
from grant_worker.tasks.conflicts import plan as conflict_plan
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.flow.pace import make_pace
from grant_worker.tasks.messages.models import Grant
from grant_worker.worker.cli.bulk.rows import Checked, Row, RowProblem
from grant_worker.worker.exit_codes import EXIT_DONE, EXIT_FAILED

Action = Literal["create", "exists", "exists_differs", "invalid", "duplicate"]
# What the row's on_conflict makes of it: nothing to do, a PATCH, or a `conflict` failure.
Then = Literal["create", "nothing", "update", "fail"]


@dataclass(frozen=True)
class PlannedRow:
    line: int
    action: Action
    then: Then | None = None
    request_id: str | None = None
    client_id: str | None = None
    default_for: str | None = None
    audience: str | None = None
    differences: dict[str, Any] | None = None
    patch: dict[str, Any] | None = None
    problems: tuple[str, ...] = ()
    duplicate_of: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if value not in (None, ())}


def fetch_existing(api: ManagementApi, audiences: Iterable[str]) -> dict[str, list[Grant]]:
    """Every grant of each audience, by audience (one listing, paged, per audience)."""
    return {audience: api.find_grants(audience=audience) for audience in sorted(set(audiences))}


def paced_api(settings: Settings) -> ManagementApi:
    """The Management API client with every call taking a slot of the fleet's pace, and every
    answer teaching it, as the workers' calls do."""
    pace = make_pace(settings, make_redis(settings))
    slot_seq = 0

    def take_slot(endpoint: str) -> None:
        nonlocal slot_seq
        if endpoint != TOKEN:
            slot_seq = pace.acquire().seq

    def observe(endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        if endpoint != TOKEN:
            pace.observe(slot_seq, status, headers)

    hooks = CallHooks(before_call=take_slot, on_response=observe)
    return make_api(settings, make_session(settings)).with_hooks(hooks)


def plan_rows(checked: Checked, existing: dict[str, list[Grant]]) -> list[PlannedRow]:
    """What each row of `checked` would do, given the grants that exist, in line order.

    Rows are decided in file order, each seeing the grants the rows before it would create.
    """
    grants = {audience: list(found) for audience, found in existing.items()}
    planned = [_invalid(problem) for problem in checked.invalid]
    for row in checked.rows:
        decided = _decide(row, grants.setdefault(row.request.grant.audience, []))
        planned.append(decided)
    for duplicate in checked.duplicates:
        grant = duplicate.first.request.grant
        planned.append(
            PlannedRow(
                line=duplicate.line,
                action="duplicate",
                request_id=duplicate.first.request_id,
                client_id=grant.client_id,
                default_for=grant.default_for,
                audience=grant.audience,
                duplicate_of=duplicate.first.line,
            )
        )
    return sorted(planned, key=lambda row: row.line)


def summarise(planned: list[PlannedRow]) -> dict[str, int]:
    counts = Counter(row.action for row in planned)
    summary = {action: counts.get(action, 0) for action in Action.__args__}  # type: ignore[attr-defined]
    summary["would_update"] = sum(1 for row in planned if row.then == "update")
    summary["would_fail"] = sum(1 for row in planned if row.then == "fail")
    summary["rows"] = len(planned)
    return summary


def _decide(row: Row, grants: list[Grant]) -> PlannedRow:
    request = row.request
    requested = request.grant
    common: dict[str, Any] = {
        "line": row.line,
        "request_id": row.request_id,
        "client_id": requested.client_id,
        "default_for": requested.default_for,
        "audience": requested.audience,
    }
    actual = pick(requested, grants)
    if actual is None:
        # Later rows of the file see this grant as existing, as they would at Auth0.
        grants.append(Grant(id=f"(line {row.line})", **requested.body()))
        return PlannedRow(action="create", then="create", **common)
    found = differences(requested, actual)
    action: Action = "exists_differs" if found else "exists"
    mode = effective_mode(request.on_conflict)
    if mode is None:
        return PlannedRow(action=action, then="fail", differences=found, **common)
    decided = conflict_plan(mode, requested, actual)
    if decided.patch:
        return PlannedRow(
            action=action, then="update", differences=found, patch=decided.patch, **common
        )
    return PlannedRow(action=action, then="nothing", differences=found, **common)


def _invalid(problem: RowProblem) -> PlannedRow:
    found = problem.identity()
    return PlannedRow(
        line=problem.line,
        action="invalid",
        problems=tuple(problem.problems),
        request_id=found.get("request_id"),
        client_id=found.get("client_id"),
        default_for=found.get("default_for"),
        audience=found.get("audience"),
    )


def run_plan(settings: Settings, checked: Checked, *, terminal: bool) -> int:
    """Print the plan of `checked` (a table on a terminal, else a JSON line per row), then its
    summary as one JSON line. Writes nothing anywhere; exit 1 when a row is invalid (the run
    would refuse the file), else 0."""
    audiences = [row.request.grant.audience for row in checked.rows]
    planned = plan_rows(checked, fetch_existing(paced_api(settings), audiences))
    if terminal:
        table = Table(title=f"plan of batch {checked.batch_id}")
        for column in ("line", "client / default_for", "audience", "action", "then", "how"):
            table.add_column(column)
        for row in planned:
            how = "; ".join(row.problems)
            if row.differences:
                how = json.dumps(row.differences)
            if row.duplicate_of:
                how = f"same request as line {row.duplicate_of}"
            table.add_row(
                str(row.line),
                row.client_id or row.default_for or "",
                row.audience or "",
                row.action.replace("_", ", "),
                row.then or "",
                how,
            )
        Console().print(table)
    else:
        for row in planned:
            click.echo(json.dumps(row.as_dict()))
    click.echo(json.dumps({"batch_id": checked.batch_id, **summarise(planned)}))
    return EXIT_FAILED if checked.invalid else EXIT_DONE
