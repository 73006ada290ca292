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

from rich.console import Console
from rich.table import Table

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.api import TOKEN, CallHooks, ManagementApi, make_api
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.conflicts import differences, effective_mode, pick
from grant_worker.tasks.conflicts import plan as conflict_plan
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.errors import NotFound
from grant_worker.tasks.flow.pace import make_pace
from grant_worker.tasks.messages.models import Grant
from grant_worker.tasks.revoke import ProtectedGrants, protected_grants
from grant_worker.worker.cli.base import echo_json, rich_safe, say
from grant_worker.worker.cli.bulk.rows import Checked, Row, RowProblem
from grant_worker.worker.cli.bulk.targets import SCOPE_OF, Check, Targets, read_targets
from grant_worker.worker.exit_codes import EXIT_DONE, EXIT_FAILED

Action = Literal[
    "create", "exists", "exists_differs", "revoke", "absent", "fail", "invalid", "duplicate"
]
# What the row's on_conflict makes of it: nothing to do, a PATCH, or a `conflict` failure.
Then = Literal["create", "nothing", "update", "fail", "delete", "protected"]


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
    grant_id: str | None = None
    # `fail`: the error code the run would end the row with.
    reason: str | None = None
    unchecked: tuple[Check, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {name: value for name, value in self.__dict__.items() if value not in (None, ())}


def fetch_existing(api: ManagementApi, audiences: Iterable[str]) -> dict[str, list[Grant]]:
    """Every grant of each audience, by audience (one listing, paged, per audience)."""
    return {audience: api.find_grants(audience=audience) for audience in sorted(set(audiences))}


def fetch_by_id(api: ManagementApi, grant_ids: Iterable[str | None]) -> dict[str, Grant | None]:
    """The grants revokes name by id (one paced GET each); None for each that is not there."""
    found: dict[str, Grant | None] = {}
    for grant_id in sorted({grant_id for grant_id in grant_ids if grant_id}):
        try:
            found[grant_id] = api.get_grant(grant_id)
        except NotFound:
            found[grant_id] = None
    return found


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
    checked: Checked,
    existing: dict[str, list[Grant]],
    by_id: Mapping[str, Grant | None] | None = None,
    protected: ProtectedGrants | None = None,
    targets: Targets | None = None,
) -> list[PlannedRow]:
    """What each row of `checked` would do, given the grants that exist and the audiences and
    clients read (`targets`; None: nothing checked), in line order.

    Rows are decided in file order, each seeing the grants the rows before it would create or
    revoke. `by_id`: the grants that revokes name by id (None: not there); `protected`: the
    grants no revoke deletes.
    """
    targets = targets or Targets(unchecked={"audience", "client"})
    grants = {audience: list(found) for audience, found in existing.items()}
    planned = [_invalid(problem) for problem in checked.invalid]
    for row in checked.rows:
        if row.request.action == "revoke":
            planned.append(_decide_revoke(row, grants, by_id or {}, protected))
            continue
        creates = row.request.creates
        refusal = targets.refusal(creates.audience, creates.client_id)
        if refusal is not None:
            planned.append(_failing(row, *refusal))
            continue
        decided = _decide(row, grants.setdefault(creates.audience, []))
        unchecked = targets.unchecked_for(creates.client_id)
        planned.append(replace(decided, unchecked=unchecked) if unchecked else decided)
    for duplicate in checked.duplicates:
        grant = duplicate.first.request.grant
        planned.append(
            PlannedRow(
                line=duplicate.line,
                action="duplicate",
                request_id=duplicate.first.request_id,
                client_id=grant.client_id if grant else None,
                default_for=grant.default_for if grant else None,
                audience=grant.audience if grant else None,
                grant_id=duplicate.first.request.grant_id,
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


def _decide_revoke(
    row: Row,
    grants: dict[str, list[Grant]],
    by_id: Mapping[str, Grant | None],
    protected: ProtectedGrants | None,
) -> PlannedRow:
    request = row.request
    if request.grant_id is not None:
        target = by_id.get(request.grant_id)
    else:
        named = request.creates
        target = pick(named, grants.get(named.audience, []))
    if target is None:
        return PlannedRow(
            line=row.line, action="absent", then="nothing", request_id=row.request_id,
            client_id=request.grant.client_id if request.grant else None,
            default_for=request.grant.default_for if request.grant else None,
            audience=request.grant.audience if request.grant else None,
            grant_id=request.grant_id,
        )  # fmt: skip
    kept = protected.reason(target) if protected is not None else None
    if kept is None:
        # Later rows see it gone, as they would at Auth0.
        for found in grants.values():
            if target in found:
                found.remove(target)
    return PlannedRow(
        line=row.line,
        action="revoke",
        then="protected" if kept else "delete",
        request_id=row.request_id,
        client_id=target.client_id,
        default_for=target.default_for,
        audience=target.audience,
        grant_id=target.id,
        problems=(kept,) if kept else (),
    )


def _decide(row: Row, grants: list[Grant]) -> PlannedRow:
    request = row.request
    requested = request.creates
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
    grant = row.request.creates
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
        grant_id=found.get("grant_id"),
    )


def run_plan(settings: Settings, checked: Checked, *, terminal: bool) -> int:
    """Print the plan of `checked` (a table on a terminal, else a JSON line per row), then its
    summary as one JSON line. Writes nothing anywhere; exit 1 when a row is invalid (the run
    would refuse the file) or would fail, else 0.

    The audiences and clients of the creates are read first (`targets`): a revoke needs
    neither, its grant is there or it is not."""
    api = paced_api(settings)
    creates = [row.request.creates for row in checked.rows if row.request.action != "revoke"]
    client_ids = [g.client_id for g in creates if g.client_id is not None]
    targets = read_targets(api, [g.audience for g in creates], client_ids)
    for check in sorted(targets.unchecked):
        say(
            f"note: {check}s unchecked: the token lacks {SCOPE_OF[check]}, so rows naming an "
            f"unknown {check} show what the run would try, not that it would fail",
            err=True,
        )
    audiences = {row.request.grant.audience for row in checked.rows if row.request.grant}
    # An audience read and found missing has no grants to list; one not read (only revokes
    # name it, or the token may not read APIs) is listed.
    listed = [a for a in audiences if targets.servers.get(a, True) is not None]
    by_id = fetch_by_id(api, [row.request.grant_id for row in checked.rows])
    existing = fetch_existing(api, listed)
    planned = plan_rows(checked, existing, by_id, protected_grants(settings), targets)
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
                rich_safe(row.client_id or row.default_for or ""),
                rich_safe(row.audience or ""),
                row.action.replace("_", ", "),
                rich_safe(row.then or ""),
                rich_safe(how),
            )
        Console().print(table)
    else:
        for row in planned:
            echo_json(row.as_dict())
    echo_json({"batch_id": checked.batch_id, **summarise(planned)})
    failing = checked.invalid or any(row.action == "fail" for row in planned)
    return EXIT_FAILED if failing else EXIT_DONE
