"""What the pages show, computed from what `reads` returned: pure functions, no I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import Undefined

from grant_worker.tasks.outcomes.batches import STATES, BatchView
from grant_worker.tasks.outcomes.windows import RecentOutcome, Snapshot

RATE_WINDOW_S = 60
# Rows an operator must look at first: what failed, then what exists but differs.
ROW_ORDER = {
    "failed": 0,
    "rejected": 1,
    "exists_differs": 2,
    "cancelled": 3,
    "updated": 4,
    "revoked": 5,
    "exists": 6,
    "created": 7,
    "absent": 8,
}
ATTENTION = ("failed", "rejected", "exists_differs")
STATE_LABELS = {"exists_differs": "exists, differs"}
# The most characters of one field a list page shows (`cut`): a page of a few hundred rows
# stays a few hundred kilobytes however large producers' requests or tenants' answers grow;
# the whole is one click away, on a page of its own.
FIELD_CHARS = 300
BLOCK_CHARS = 1500


@dataclass
class BatchProgress:
    batch_id: str
    counts: dict[str, int]
    pending: int
    total: int | None
    rate_per_s: float | None
    source: Literal["ledger", "estimate"]
    notes: list[str] = field(default_factory=list)
    # Some of the batch's outcomes may be older than the window read: counts are lower bounds.
    partial: bool = False

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def percent(self) -> int:
        if not self.total:
            return 0
        return min(100, int(self.done * 100 / self.total))

    @property
    def eta_s(self) -> float | None:
        if not self.pending:
            return 0.0
        if not self.rate_per_s:
            return None
        return self.pending / self.rate_per_s


@dataclass(frozen=True)
class Row:
    request_id: str
    state: str
    code: str
    message: str
    attempts: int | None
    finished_at: str
    differences: Any
    # The size of the outcome's JSON when only its leading fields were read.
    cut_from: int | None = None


def latest_per_request(outcomes: Iterable[RecentOutcome]) -> dict[str, RecentOutcome]:
    """The newest outcome of each request id (a replayed request has several), newest first."""
    latest: dict[str, RecentOutcome] = {}
    for outcome in outcomes:
        latest.setdefault(outcome.request_id, outcome)
    return latest


def _batch_outcomes(snapshot: Snapshot, batch_id: str) -> dict[str, RecentOutcome]:
    pending = snapshot.pending_ids_by_batch.get(batch_id, set())
    mine = (o for o in snapshot.recent if o.batch_id == batch_id)
    return {rid: o for rid, o in latest_per_request(mine).items() if rid not in pending}


def rate_per_s(outcomes: Iterable[RecentOutcome], now: float) -> float | None:
    """Outcomes per second over the last minute (or since the first, if that is sooner)."""
    moments = [o.at for o in outcomes if now - o.at <= RATE_WINDOW_S]
    if not moments:
        return None
    span = max(now - min(moments), 1.0)
    return len(moments) / span


def _ledger_rate(ledger: BatchView, done: int) -> float | None:
    """The batch's average pace, from its first and last outcome times."""
    first, last = ledger.first_outcome_at, ledger.last_outcome_at
    if not first or not last or last <= first or done < 2:
        return None
    return (done - 1) / (last - first)


def batch_progress(
    batch_id: str, snapshot: Snapshot, ledger: BatchView | None, now: float
) -> BatchProgress:
    """A batch's progress from its ledger where there is one, else estimated from the snapshot.

    The estimate counts the batch's requests seen queued, in flight, or among the newest
    outcomes; it is exact while the queue was read whole and the batch's outcomes all lie
    within the outcome window, and it says so when they may not.
    """
    outcomes = _batch_outcomes(snapshot, batch_id)
    rate = rate_per_s(outcomes.values(), now)
    if ledger is not None:
        counts = {state: getattr(ledger, state) for state in STATES}
        done = sum(counts.values())
        # The ledger's pending: enqueued and not yet ended, whether a worker holds it or not.
        pending = ledger.pending
        if rate is None and pending:
            rate = _ledger_rate(ledger, done)
        return BatchProgress(batch_id, counts, pending, ledger.total, rate, "ledger")
    counts = {state: 0 for state in STATES}
    for outcome in outcomes.values():
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
    pending = len(snapshot.pending_ids_by_batch.get(batch_id, set()))
    notes = ["estimated from the queue and the newest outcomes: no batch ledger"]
    if not snapshot.queue_fully_read:
        notes.append("the queue is longer than the part read: more may be waiting")
    if snapshot.unknown_batch:
        notes.append(f"{snapshot.unknown_batch} messages read are cut or unreadable: batch unknown")
    partial = bool(
        snapshot.window_full and snapshot.recent and snapshot.recent[-1].batch_id == batch_id
    )
    if partial:
        notes.append("older outcomes of this batch lie beyond the window read")
    total = sum(counts.values()) + pending
    return BatchProgress(batch_id, counts, pending, total, rate, "estimate", notes, partial)


def batch_ids(snapshot: Snapshot) -> list[str]:
    """Batches seen in the snapshot, most recently active first."""
    seen: dict[str, None] = {}
    for batch in snapshot.pending_ids_by_batch:
        seen.setdefault(batch, None)
    for outcome in snapshot.recent:
        if outcome.batch_id:
            seen.setdefault(outcome.batch_id, None)
    return list(seen)


def row_state(outcome: dict[str, Any]) -> str:
    status = str(outcome.get("status"))
    if status == "exists" and outcome.get("differences"):
        return "exists_differs"
    if status == "rejected" and (outcome.get("error") or {}).get("code") == "cancelled":
        return "cancelled"
    return status


def _row(
    request_id: str, state: str, outcome: dict[str, Any] | None, cut_from: int | None = None
) -> Row:
    outcome = outcome or {}
    error = outcome.get("error") or {}
    return Row(
        request_id=request_id,
        state=STATE_LABELS.get(state, state),
        code=str(error.get("code") or ""),
        message=str(error.get("message") or ""),
        attempts=outcome.get("attempts"),
        finished_at=str(outcome.get("finished_at") or ""),
        differences=outcome.get("differences"),
        cut_from=cut_from,
    )


def _order(state: str, request_id: str) -> tuple[int, str]:
    return ROW_ORDER.get(state, len(ROW_ORDER)), request_id


def batch_rows(
    snapshot: Snapshot,
    batch_id: str,
    row_states: dict[str, str] | None = None,
    records: dict[str, dict[str, Any]] | None = None,
    records_cut_from: dict[str, int] | None = None,
) -> list[Row]:
    """The batch's rows: failed, rejected, "exists, differs" first, then the rest, then pending.

    With the ledger's `row_states`, every row it lists (details from the newest outcomes, else
    from `records`, of which `records_cut_from` were cut); without, the rows seen in the
    snapshot.
    """
    newest = _batch_outcomes(snapshot, batch_id)
    seen = {rid: o.outcome for rid, o in newest.items()}
    cut = {**(records_cut_from or {}), **{r: o.cut_from for r, o in newest.items() if o.cut_from}}
    if row_states is None:
        states = {rid: row_state(outcome) for rid, outcome in seen.items()}
        pending = snapshot.pending_ids_by_batch.get(batch_id, set())
    else:
        states = {rid: st for rid, st in row_states.items() if st != "queued"}
        pending = {rid for rid, st in row_states.items() if st == "queued"}
    ended = sorted(states, key=lambda rid: _order(states[rid], rid))
    rows = [
        _row(rid, states[rid], seen.get(rid) or (records or {}).get(rid), cut.get(rid))
        for rid in ended
    ]
    rows.extend(_row(rid, "pending", None) for rid in sorted(pending))
    return rows


def rows_needing_records(
    snapshot: Snapshot, batch_id: str, row_states: dict[str, str], limit: int
) -> list[str]:
    """Rows shown first whose details are not among the newest outcomes (to fetch, bounded)."""
    seen = _batch_outcomes(snapshot, batch_id)
    first = sorted(
        (rid for rid, st in row_states.items() if st in ATTENTION and rid not in seen),
        key=lambda rid: _order(row_states[rid], rid),
    )
    return first[:limit]


def read_limits(snapshot: Snapshot, records_unread: int = 0) -> list[str]:
    """What a batch page says when a byte budget, not its count, stopped a read."""
    said = []
    if snapshot.queue_cut:
        said.append(
            f"the queue's sample stopped at its byte budget ({len(snapshot.queued)} messages read)"
        )
    if snapshot.outcomes_cut:
        said.append(
            f"the newest outcomes were read up to a byte budget ({len(snapshot.recent)} read)"
        )
    if records_unread:
        said.append(
            f"details of {records_unread} rows not read: the page's byte budget was reached"
        )
    return said


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def cut(value: Any, limit: int = FIELD_CHARS) -> str:
    """`value` as text of at most `limit` characters and a marker saying how much is left out."""
    if value is None or isinstance(value, Undefined):
        return ""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def json_cut(value: Any, limit: int = BLOCK_CHARS) -> str:
    """`value` as indented JSON, cut like `cut`."""
    if isinstance(value, Undefined):
        return ""
    return cut(json.dumps(value, indent=2, ensure_ascii=False, default=str), limit)
