"""`grants bulk FILE --plan`: what a file would do to the tenant, read from it, written nowhere.

Each distinct audience and client of the file is read once (`targets`: a row naming an API or
a client the tenant lacks, or a client that cannot hold grants, would `fail`; checks the token
has no read scope for are `unchecked`); the grants of every audience are listed (checkpoint
pages). Every call is paced by the fleet's pace, so a plan never spends the rate the workers
need. Each row is then decided by the same pure rules the worker applies on a 409
(`tasks.conflicts`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
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
from grant_worker.worker.cli.bulk.targets import SCOPE_OF, Check, Targets, read_targets
from grant_worker.worker.exit_codes import EXIT_DONE, EXIT_FAILED

Action = Literal["create", "exists", "exists_differs", "fail", "invalid", "duplicate"]
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
    # `fail`: the error code the run would end the row with.
    reason: str | None = None
    unchecked: tuple[Check, ...] = ()

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


def plan_rows(
    checked: Checked, existing: dict[str, list[Grant]], targets: Targets | None = None
) -> list[PlannedRow]:
    """What each row of `checked` would do, given the grants that exist and the audiences and
    clients read (`targets`; None: nothing checked), in line order.

    Rows are decided in file order, each seeing the grants the rows before it would create.
    """
    targets = targets or Targets(unchecked={"audience", "client"})
    grants = {audience: list(found) for audience, found in existing.items()}
    planned = [_invalid(problem) for problem in checked.invalid]
    for row in checked.rows:
        grant = row.request.grant
        refusal = targets.refusal(grant.audience, grant.client_id)
        if refusal is not None:
            planned.append(_failing(row, *refusal))
            continue
        decided = _decide(row, grants.setdefault(grant.audience, []))
        unchecked = targets.unchecked_for(grant.client_id)
        planned.append(replace(decided, unchecked=unchecked) if unchecked else decided)
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


def summarise(planned: list[PlannedRow]) -> dict[str, Any]:
    counts = Counter(row.action for row in planned)
    summary: dict[str, Any] = {action: counts.get(action, 0) for action in Action.__args__}  # type: ignore[attr-defined]
    summary["would_update"] = sum(1 for row in planned if row.then == "update")
    summary["would_fail"] = sum(1 for row in planned if row.then == "fail")
    summary["rows"] = len(planned)
    unchecked: dict[str, int] = {check: 0 for check in SCOPE_OF}
    for row in planned:
        for check in row.unchecked:
            unchecked[check] += 1
    summary["unchecked"] = unchecked
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


def _failing(row: Row, reason: str, why: str) -> PlannedRow:
    grant = row.request.grant
    return PlannedRow(
        line=row.line,
        action="fail",
        then="fail",
        request_id=row.request_id,
        client_id=grant.client_id,
        default_for=grant.default_for,
        audience=grant.audience,
        problems=(why,),
        reason=reason,
    )


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
    would refuse the file) or would fail, else 0."""
    api = paced_api(settings)
    grants = [row.request.grant for row in checked.rows]
    client_ids = [g.client_id for g in grants if g.client_id is not None]
    targets = read_targets(api, [g.audience for g in grants], client_ids)
    for check in sorted(targets.unchecked):
        click.echo(
            f"note: {check}s unchecked: the token lacks {SCOPE_OF[check]}, so rows naming an "
            f"unknown {check} show what the run would try, not that it would fail",
            err=True,
        )
    listed = [a for a in {g.audience for g in grants} if targets.refusal(a, None) is None]
    planned = plan_rows(checked, fetch_existing(api, listed), targets)
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
            if row.unchecked:
                unchecked = f"{' and '.join(row.unchecked)} unchecked"
                how = f"{how}; {unchecked}" if how else unchecked
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
    failing = checked.invalid or any(row.action == "fail" for row in planned)
    return EXIT_FAILED if failing else EXIT_DONE
