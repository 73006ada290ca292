"""What `grants sync` must do to make one audience's grants equal a file (pure).

Each row of the file is a desired grant on the audience: it becomes a create with
`on_conflict: replace`. Deciding from one listing of the audience which rows need anything
keeps the sync to the calls it needs: a row whose grant is there and equal is `unchanged` (no
request at all), a missing one a `create`, a differing one an `update` (naming the listed
grant's id, so that the worker PATCHes it equal in one call). With prune, each grant on the
audience whose client no row names is a `revoke` (by grant id and key: one DELETE), unless it
is protected (`tasks.revoke.ProtectedGrants`).

Request ids derive from the batch and the content, as `grants bulk` derives them, so that a
rerun of the same command finds what an earlier run enqueued or finished.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from grant_worker.tasks.conflicts import pick, replace_patch
from grant_worker.tasks.messages.models import Grant, GrantRequest
from grant_worker.tasks.revoke import ProtectedGrants, grant_key
from grant_worker.worker.cli.bulk.rows import (
    Checked,
    Row,
    RowProblem,
    derive_request_id,
    normalised,
)

Action = Literal["create", "update", "revoke", "unchanged", "protected"]
ACTIONS: tuple[Action, ...] = ("create", "update", "revoke", "unchanged", "protected")


@dataclass(frozen=True)
class SyncAction:
    """One thing the sync does (or deliberately leaves), with the request that does it."""

    action: Action
    client_id: str | None
    default_for: str | None
    audience: str
    subject_type: str
    line: int | None = None
    grant_id: str | None = None
    patch: dict[str, Any] | None = None
    reason: str | None = None
    request: GrantRequest | None = field(default=None, compare=False)

    @property
    def request_id(self) -> str | None:
        return self.request.request_id if self.request is not None else None

    def as_dict(self) -> dict[str, Any]:
        shown = {
            "action": self.action,
            "line": self.line,
            "client_id": self.client_id,
            "default_for": self.default_for,
            "audience": self.audience,
            "subject_type": self.subject_type,
            "grant_id": self.grant_id,
            "request_id": self.request_id,
            "patch": self.patch,
            "reason": self.reason,
        }
        return {name: value for name, value in shown.items() if value is not None}


def desired_rows(
    checked: Checked, audience: str, batch_id: str
) -> tuple[list[Row], list[RowProblem]]:
    """The file's rows as creates with `on_conflict: replace` in `batch_id`, and the rows that
    cannot be part of a sync of `audience` (another audience, a revoke, a grant twice)."""
    problems = list(checked.invalid)
    rows: list[Row] = []
    seen: dict[tuple[str | None, str | None, str], int] = {}
    for row in checked.rows:
        request = row.request
        if request.action != "create":
            problems.append(RowProblem(row.line, ["action: a sync file lists desired grants"]))
            continue
        grant = request.creates
        if grant.audience != audience:
            problems.append(
                RowProblem(row.line, [f"grant.audience: must be {audience} (the --audience)"])
            )
            continue
        key = (grant.client_id, grant.default_for, grant.effective_subject_type)
        if key in seen:
            problems.append(RowProblem(row.line, [f"grant: the same grant as line {seen[key]}"]))
            continue
        seen[key] = row.line
        wanted = request.model_copy(
            update={"on_conflict": "replace", "batch_id": batch_id, "request_id": None}
        )
        request_id = derive_request_id(batch_id, normalised(wanted))
        rows.append(Row(row.line, wanted.model_copy(update={"request_id": request_id})))
    for duplicate in checked.duplicates:
        problems.append(
            RowProblem(duplicate.line, [f"grant: the same grant as line {duplicate.first.line}"])
        )
    return rows, sorted(problems, key=lambda problem: problem.line)


def decide(
    rows: list[Row],
    existing: list[Grant],
    *,
    audience: str,
    prune: bool,
    protected: ProtectedGrants,
    batch_id: str,
) -> list[SyncAction]:
    """Every action of the sync: the rows in file order, then the grants to revoke (or keep,
    protected) in the listing's order. `existing`: the audience's grants as listed."""
    on_audience = [grant for grant in existing if grant.audience == audience]
    actions = [_for_row(row, on_audience) for row in rows]
    if not prune:
        return actions
    named = {(row.request.creates.client_id, row.request.creates.default_for) for row in rows}
    for grant in on_audience:
        if (grant.client_id, grant.default_for) in named:
            continue
        actions.append(_for_leftover(grant, protected, batch_id))
    return actions


def summarise(actions: list[SyncAction]) -> dict[str, int]:
    counts = Counter(action.action for action in actions)
    return {name: counts.get(name, 0) for name in ACTIONS}


def _for_row(row: Row, on_audience: list[Grant]) -> SyncAction:
    requested = row.request.creates
    common: dict[str, Any] = {
        "line": row.line,
        "client_id": requested.client_id,
        "default_for": requested.default_for,
        "audience": requested.audience,
        "subject_type": requested.effective_subject_type,
    }
    actual = pick(requested, on_audience)
    if actual is None:
        return SyncAction("create", request=row.request, **common)
    patch = replace_patch(requested, actual)
    if patch is None:
        return SyncAction("unchanged", grant_id=actual.id, **common)
    # Naming the listed grant lets the worker PATCH it at once (no POST, 409 and lookup).
    request = row.request.model_copy(update={"grant_id": actual.id})
    return SyncAction("update", grant_id=actual.id, patch=patch, request=request, **common)


def _for_leftover(grant: Grant, protected: ProtectedGrants, batch_id: str) -> SyncAction:
    common: dict[str, Any] = {
        "client_id": grant.client_id,
        "default_for": grant.default_for,
        "audience": grant.audience,
        "subject_type": grant.subject_type or "client",
        "grant_id": grant.id,
    }
    reason = protected.reason(grant)
    if reason is not None:
        return SyncAction("protected", reason=reason, **common)
    request = GrantRequest(
        request_id=derive_request_id(batch_id, f"revoke {grant.id}"),
        action="revoke",
        # Id and key both: the worker DELETEs at once, its lookup being this listing.
        grant_id=grant.id,
        grant=grant_key(grant),
        batch_id=batch_id,
    )
    return SyncAction("revoke", request=request, **common)
