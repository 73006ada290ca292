"""Every Redis read of the dashboard, in one module, each bounded.

The dashboard reads only what it shows: small hashes (breaker, learned rate, batch ledgers,
per-second counters), lengths (LLEN, HLEN), and the newest entries of a stream (XREVRANGE with a
COUNT). It never scans a stream or the key space, so a page costs the same with ten outcomes as
with a million.

The state it shows is read through its owners' readers: the breaker (`tasks.flow.breaker`), the
learned tenant rate and any 429 pause (`tasks.flow.pace`), the worker register and heartbeats
(`tasks.fleet`), the batch ledgers (`tasks.outcomes.batches`), and the bounded windows of the
newest outcomes and dead letters (`tasks.outcomes.windows`). Where a batch has no ledger, its
progress is derived from one atomic, bounded snapshot of the queue's head, the unacknowledged
messages and the newest outcomes, and marked as an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis

from grant_worker.tasks.activity import (
    CALL_SERIES,
    RATE_LIMITED_SERIES,
    outcome_series,
    read_activity,
)
from grant_worker.tasks.delivery.ledger import delivery_count
from grant_worker.tasks.fleet import WorkerBeat, read_beats
from grant_worker.tasks.flow.breaker import BreakerState, read_breaker
from grant_worker.tasks.flow.pace import PaceState, read_pace
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.outcomes.batches import (
    BatchView,
    read_batch,
    read_batch_rows,
    read_batches,
    recent_batch_ids,
)
from grant_worker.tasks.outcomes.letters import DeadLetter, dead_letter, dead_letter_head
from grant_worker.tasks.outcomes.letters import json_object as letter_json
from grant_worker.tasks.outcomes.records import (
    Pointer,
    outcome_texts,
    parse_pointer,
    trimmed_outcome,
)
from grant_worker.tasks.outcomes.streams import Entry
from grant_worker.tasks.outcomes.windows import (
    BUDGET_BYTES,
    Matched,
    OutcomeWindows,
    RecentOutcome,
    Snapshot,
    recent_outcome,
)

STATUSES = ("created", "exists", "updated", "revoked", "absent", "failed", "rejected")
# Bounds of every read (entries or items); a page never reads more than these.
RECENT_OUTCOMES = 1000
DEAD_WINDOW = 500
QUEUE_SAMPLE = 1000
BATCH_LIST = 20
BATCH_ROWS_READ = 5000
WORKERS_READ = 100
# Bytes of outcome JSON a batch page looks at for its rows' details (beyond the snapshot's).
RECORDS_BUDGET = BUDGET_BYTES
# A worker whose last beat is older than this shows as silent.
WORKER_STALE_S = 30


@dataclass(frozen=True)
class RecordHeads:
    """Outcomes of a page's rows (`DashboardReads.outcome_record_heads`): each by request id,
    the size of those cut to their leading fields, and how many the byte budget left unread."""

    outcomes: dict[str, dict[str, Any]]
    cut_from: dict[str, int]
    unread: int


@dataclass(frozen=True)
class DeadWindow:
    letters: list[DeadLetter]
    codes: list[str]
    batches: list[str]
    # Entries looked at: the window, or fewer where their size reached the byte budget.
    read: int


class DashboardReads:
    """The dashboard's view of one deployment's Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, queue: str) -> None:
        self._client = client
        self._keys = keys
        self._queue = queue
        self._windows = OutcomeWindows(client, keys)

    # -- gauges --------------------------------------------------------------------------

    def queue_depth(self) -> int:
        return int(self._client.llen(self._queue))

    def in_flight(self) -> int:
        return int(self._client.hlen(self._keys.unacked))

    def breaker(self) -> BreakerState | None:
        """The fleet's breaker, or None while it was never written."""
        breaker = read_breaker(self._client, self._keys)
        return breaker if breaker.recorded else None

    def pace(self) -> PaceState:
        """What the fleet learned of the tenant's rate, and any 429 pause (epoch s)."""
        return read_pace(self._client, self._keys)

    def workers(self) -> list[WorkerBeat]:
        """The registered workers (at most `WORKERS_READ`) with their heartbeats."""
        return read_beats(self._client, self._keys, limit=WORKERS_READ)

    # -- per-second counters ---------------------------------------------------------------

    def activity(self, now: float, seconds: int) -> tuple[int, dict[str, list[int]]]:
        """Counts per second for the `seconds` up to `now`: (first second, {series: counts}).

        One HGETALL per minute touched (16 for a quarter of an hour), pipelined; a field that
        cannot be read is left out (`tasks.activity.read_activity`).
        """
        start = int(now) - seconds + 1
        names = [outcome_series(s) for s in STATUSES] + [CALL_SERIES, RATE_LIMITED_SERIES]
        series = read_activity(self._client, self._keys, start=start, seconds=seconds, names=names)
        return start, series

    # -- outcomes --------------------------------------------------------------------------

    def outcome_record(self, request_id: str) -> dict[str, Any] | None:
        return self.outcome_records([request_id]).get(request_id)

    def request_state(self, request_id: str) -> dict[str, Any]:
        """What Redis holds about one request besides its outcome (deliveries, sent, lock)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.get(self._keys.deliveries(request_id))
        pipe.exists(self._keys.sent(request_id))
        pipe.exists(self._keys.lock(request_id))
        deliveries, sent, locked = pipe.execute()
        return {
            "deliveries": delivery_count(deliveries),
            "sent": bool(sent),
            "locked": bool(locked),
        }

    def history(self, request_id: str) -> tuple[list[RecentOutcome], list[DeadLetter]]:
        """Outcomes and dead letters of `request_id` among the newest entries (bounded)."""
        outcomes = self._windows.matching(
            self._keys.results, window=RECENT_OUTCOMES, field_name="outcome", request_id=request_id
        )
        letters = self._windows.matching(
            self._keys.dead, window=DEAD_WINDOW, field_name="dead", request_id=request_id
        )
        return (
            [recent_outcome(found) for found in outcomes.entries],
            [_letter(found) for found in letters.entries],
        )

    # -- batches ---------------------------------------------------------------------------

    def batch_ledger(self, batch_id: str) -> BatchView | None:
        return read_batch(self._client, self._keys, batch_id)

    def batch_ledgers(self, batch_ids: list[str]) -> dict[str, BatchView]:
        """The ledgers of `batch_ids` that exist (callers bound the list)."""
        return read_batches(self._client, self._keys, batch_ids)

    def batch_row_states(self, batch_id: str) -> dict[str, str] | None:
        """Request id → ledger state of a batch's rows (the first `BATCH_ROWS_READ`), or None
        while there is no rows hash."""
        return read_batch_rows(self._client, self._keys, batch_id, BATCH_ROWS_READ)

    def outcome_records(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The recorded outcomes of `request_ids`, whole (one MGET of the records, then one
        pipeline of their results entries; callers bound the list to a few)."""
        found, pointers = self._records(request_ids)
        for rid, text in outcome_texts(self._client, self._keys, pointers).items():
            found[rid] = (
                _readable(*letter_json(text))
                if text
                else trimmed_outcome(rid, pointers[rid]).model_dump(mode="json")
            )
        return found

    def outcome_record_heads(self, request_ids: list[str]) -> RecordHeads:
        """The recorded outcomes of `request_ids`, in order, each its leading fields where
        it is longer than `HEAD_BYTES`, until `RECORDS_BUDGET` bytes of outcomes were looked
        at (`OutcomeWindows.heads`): a page of hundreds of rows reads a bounded amount."""
        found, pointers = self._records(request_ids)
        entries, looked = self._windows.heads(
            self._keys.results,
            [pointer.entry_id for pointer in pointers.values()],
            field_name="outcome",
            budget=RECORDS_BUDGET,
        )
        by_entry = {(m.entry_id, m.listed_id): m for m in entries}
        cut: dict[str, int] = {}
        for rid, pointer in list(pointers.items())[:looked]:
            match = by_entry.get((pointer.entry_id, rid))
            if match is None:
                found[rid] = trimmed_outcome(rid, pointer).model_dump(mode="json")
                continue
            outcome = recent_outcome(match)
            found[rid] = _readable(outcome.outcome, outcome.unreadable)
            if outcome.cut_from is not None:
                cut[rid] = outcome.cut_from
        return RecordHeads(found, cut, unread=len(pointers) - looked)

    def _records(
        self, request_ids: list[str]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, Pointer]]:
        """The records of `request_ids` (one MGET): those that hold an outcome themselves (or
        cannot be read), and the pointers into the results stream of the rest."""
        if not request_ids:
            return {}, {}
        raws = cast(
            list[str | None],
            self._client.mget([self._keys.outcome_record(rid) for rid in request_ids]),
        )
        found: dict[str, dict[str, Any]] = {}
        pointers: dict[str, Pointer] = {}
        for rid, raw in zip(request_ids, raws, strict=True):
            if not raw:
                continue
            if raw.startswith("{"):
                # A record that holds the whole outcome JSON, not a pointer: shown as it is.
                found[rid] = _readable(*letter_json(raw))
                continue
            try:
                pointers[rid] = parse_pointer(raw)
            except ValueError:
                found[rid] = _readable({}, "not an outcome record")
        return found, pointers

    def active_batches(self) -> list[str] | None:
        """Batch ids by last activity from the ledgers' index, or None while there is none."""
        return recent_batch_ids(self._client, self._keys, BATCH_LIST) or None

    def snapshot(self, batch_id: str = "") -> Snapshot:
        """The queue's head, the in-flight messages and the newest outcomes, atomically, each
        bounded by count and bytes; the outcomes of `batch_id` come as their leading fields,
        the others as id, status and batch only."""
        return self._windows.snapshot(
            self._queue, sample=QUEUE_SAMPLE, window=RECENT_OUTCOMES, batch_id=batch_id
        )

    # -- dead letters ----------------------------------------------------------------------

    def dead_letters(self, *, code: str = "", batch_id: str = "") -> DeadWindow:
        """The newest dead letters (of `code` and `batch_id`, where given), newest first."""
        found = self._windows.matching(
            self._keys.dead, window=DEAD_WINDOW, field_name="dead", code=code, batch=batch_id
        )
        return DeadWindow(
            letters=[_letter(entry) for entry in found.entries],
            read=found.read,
            codes=sorted(found.codes),
            batches=sorted(found.batches),
        )

    def dead_letter(self, entry_id: str) -> DeadLetter | None:
        entries = cast(list[Entry], self._client.xrange(self._keys.dead, entry_id, entry_id))
        return dead_letter(*entries[0]) if entries else None

    def dead_letter_heads(self, entry_ids: list[str]) -> tuple[list[DeadLetter], int]:
        """The dead letters of `entry_ids` still in the stream, each its leading fields where
        longer than `HEAD_BYTES`, until `BUDGET_BYTES` of letters were looked at; and how many
        of the ids were not looked up (the budget stopped the read before them)."""
        found, looked = self._windows.heads(self._keys.dead, entry_ids, field_name="dead")
        return [_letter(entry) for entry in found], len(entry_ids) - looked

    def dead_count(self) -> int:
        return int(self._client.xlen(self._keys.dead))

    def results_count(self) -> int:
        return int(self._client.xlen(self._keys.results))


def _letter(found: Matched) -> DeadLetter:
    return dead_letter_head(found.entry_id, found.listed_id, found.head, found.size)


def _readable(outcome: dict[str, Any], why: str | None) -> dict[str, Any]:
    """An outcome for a page: as it is, or marked unreadable with why (shown as its status)."""
    return {"status": "unreadable", "unreadable": why} if why else outcome
