"""The per-batch ledger: how many requests a batch has, how many wait, how each one ended.

Kept in Redis beside the outcomes, so that a batch's progress is read in a few calls instead of
by scanning the results stream:

- `Keys.batch(B)`: a hash of counters: `total` (requests the batch ever had), `queued`
  (enqueued and not yet ended), one counter per ending state (`STATES`), and times in epoch
  milliseconds (`first_enqueued_ms`, `first_outcome_ms`, `last_outcome_ms`).
- `Keys.batch_rows(B)`: request id → its state (`queued` or an ending state), so that a request
  counted once stays counted once, through redeliveries, replays and reruns.
- `Keys.batches`: batch ids by last activity.

Writers, Lua scripts in `lua/`: `batch_mark_queued.lua` (the producer, in the same step as the
LPUSH of the messages: `register_mark_queued`) and `batch_count_outcome.lua` (the head of the
outcome recorder's script, so a batch's counters move in the same atomic step as the outcome is
recorded). Readers, pure reads for the CLI and the dashboard: `read_batch`, `read_batches`,
`list_batches`, `recent_batch_ids` and `read_batch_rows`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis
from redis.commands.core import Script

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import Outcome
from grant_worker.tasks.outcomes.queued import unacked_request
from grant_worker.tasks.scripts import register

# How a request ended, as the ledger counts it. `exists_differs`: an `exists` whose grant does
# not match the request (drift); `cancelled`: rejected by `grants batch cancel`.
STATES = (
    "created",
    "exists",
    "exists_differs",
    "updated",
    "revoked",
    "absent",
    "failed",
    "rejected",
    "cancelled",
)
QUEUED = "queued"

# The head of the recorder's script (`tasks.outcomes.recorder`): a batch's counters move in the
# same atomic step as the outcome is recorded.
COUNT_IN_BATCH = "batch_count_outcome.lua"


def register_mark_queued(client: redis.Redis) -> Script:
    """The producer's script that pushes a batch's messages and counts them in the ledger in
    one step (`lua/batch_mark_queued.lua`)."""
    return register(client, __package__, "batch_mark_queued.lua")


def state_of(outcome: Outcome) -> str:
    """The ledger state of an outcome (see `STATES`)."""
    if outcome.status == "exists" and outcome.differences:
        return "exists_differs"
    if outcome.status == "rejected" and outcome.error and outcome.error.code == "cancelled":
        return "cancelled"
    return outcome.status


def batch_argument(
    outcome: Outcome, *, ttl_s: int, withdraw: str | None = None, now_ms: int | None = None
) -> str:
    """The recorder script's last argument for `outcome` ("" when there is nothing to do)."""
    if outcome.batch_id is None and withdraw is None:
        return ""
    arg: dict[str, Any] = {
        "rid": outcome.request_id,
        "state": state_of(outcome),
        "now_ms": str(now_ms if now_ms is not None else int(time.time() * 1000)),
        "ttl_s": ttl_s,
    }
    if outcome.batch_id is not None:
        arg["batch"] = outcome.batch_id
    if withdraw is not None:
        arg["withdraw"] = withdraw
    return json.dumps(arg, separators=(",", ":"))


def batch_keys(keys: Keys, batch_id: str | None, queue: str) -> list[str]:
    """The recorder script's last keys: ledger, rows, batches, queue."""
    name = batch_id or ""
    return [keys.batch(name), keys.batch_rows(name), keys.batches, queue]


@dataclass(frozen=True)
class BatchView:
    """A batch's progress as the ledger has it. Times are epoch seconds (None: not yet).

    `queued`: enqueued and not yet taken by a worker; `in_flight`: taken, not yet ended
    (including requests a worker holds back to retry later).
    """

    batch_id: str
    total: int
    queued: int
    in_flight: int
    created: int
    exists: int
    exists_differs: int
    updated: int
    revoked: int
    absent: int
    failed: int
    rejected: int
    cancelled: int
    first_enqueued_at: float | None
    first_outcome_at: float | None
    last_outcome_at: float | None
    # Ledger fields that are not whole numbers (read as 0 or "not yet").
    unreadable: tuple[str, ...] = ()

    @property
    def finished(self) -> int:
        return sum(getattr(self, state) for state in STATES)

    @property
    def pending(self) -> int:
        return self.queued + self.in_flight

    @property
    def rate_per_s(self) -> float | None:
        """Outcomes per second since the batch was first enqueued; None before two points."""
        start = self.first_enqueued_at or self.first_outcome_at
        if start is None or self.last_outcome_at is None or self.last_outcome_at <= start:
            return None
        return self.finished / (self.last_outcome_at - start)

    @property
    def eta_s(self) -> float | None:
        """Seconds until every pending request has ended, at `rate_per_s`; 0 when done."""
        if self.pending == 0:
            return 0.0
        rate = self.rate_per_s
        return self.pending / rate if rate else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "finished": self.finished,
            "pending": self.pending,
            "rate_per_s": self.rate_per_s,
            "eta_s": self.eta_s,
        }


def read_batch(client: redis.Redis, keys: Keys, batch_id: str) -> BatchView | None:
    """The ledger of `batch_id`, or None when no such batch is known. Reads only."""
    fields = cast(dict[Any, Any], client.hgetall(keys.batch(batch_id)))
    if not fields:
        return None
    return _view(batch_id, _text(fields), in_flight_by_batch(client, keys).get(batch_id, 0))


def recent_batch_ids(client: redis.Redis, keys: Keys, limit: int) -> list[str]:
    """The ids of the `limit` batches with the latest activity, newest first (a batch whose
    ledger expired may still be among them). Reads only."""
    return [_str(i) for i in cast(list[Any], client.zrevrange(keys.batches, 0, limit - 1))]


def read_batches(client: redis.Redis, keys: Keys, batch_ids: list[str]) -> dict[str, BatchView]:
    """The ledgers of `batch_ids` that exist (one pipeline, one read of the in-flight
    messages). Reads only."""
    if not batch_ids:
        return {}
    pipe = client.pipeline(transaction=False)
    for batch_id in batch_ids:
        pipe.hgetall(keys.batch(batch_id))
    in_flight = in_flight_by_batch(client, keys)
    return {
        batch_id: _view(batch_id, _text(fields), in_flight.get(batch_id, 0))
        for batch_id, fields in zip(batch_ids, pipe.execute(), strict=True)
        if fields
    }


def list_batches(client: redis.Redis, keys: Keys, limit: int) -> list[BatchView]:
    """The `limit` batches with the latest activity, newest first. Reads only."""
    ids = recent_batch_ids(client, keys, limit)
    views = read_batches(client, keys, ids)
    return [views[batch_id] for batch_id in ids if batch_id in views]


def read_batch_rows(
    client: redis.Redis, keys: Keys, batch_id: str, limit: int
) -> dict[str, str] | None:
    """Request id → state (`queued` or one of `STATES`) of a batch's rows: the first `limit`
    an incremental scan of its rows hash yields, or None while it has none. Reads only."""
    states: dict[str, str] = {}
    for request_id, state in client.hscan_iter(keys.batch_rows(batch_id), count=1000):
        states[_str(request_id)] = _str(state)
        if len(states) >= limit:
            break
    return states or None


def in_flight_by_batch(client: redis.Redis, keys: Keys) -> dict[str, int]:
    """Messages taken by workers and not yet acknowledged, counted by batch.

    Read from kombu's hash of unacknowledged messages, which holds at most the fleet's
    prefetch (a few per worker thread), not the queue.
    """
    counts: dict[str, int] = {}
    for raw in cast(list[Any], client.hvals(keys.unacked)):
        batch_id = unacked_request(raw).batch_id
        if batch_id is not None:
            counts[batch_id] = counts.get(batch_id, 0) + 1
    return counts


def _view(batch_id: str, fields: dict[str, str], in_flight: int) -> BatchView:
    # Only the Lua writers touch a ledger, but a hand-edited field must cost that field, not
    # the page or command that lists every batch: it reads as 0 (or not yet) and is named.
    unreadable: list[str] = []

    def whole(name: str) -> int | None:
        value = fields.get(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            if name not in unreadable:
                unreadable.append(name)
            return None

    def count(name: str) -> int:
        return max(0, whole(name) or 0)

    def moment(name: str) -> float | None:
        value = whole(name)
        return value / 1000 if value else None

    # `queued` in the ledger is "enqueued, no outcome yet": what workers hold is part of it.
    in_flight = min(in_flight, count(QUEUED))
    return BatchView(
        batch_id=batch_id,
        total=count("total"),
        queued=count(QUEUED) - in_flight,
        in_flight=in_flight,
        **{state: count(state) for state in STATES},
        first_enqueued_at=moment("first_enqueued_ms"),
        first_outcome_at=moment("first_outcome_ms"),
        last_outcome_at=moment("last_outcome_ms"),
        unreadable=tuple(sorted(unreadable)),
    )


def _text(fields: dict[Any, Any]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in fields.items()}


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
