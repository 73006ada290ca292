"""Bounded reads of the newest outcomes and dead letters, for pages that must cost the same with
ten outcomes as with a million.

Three scripts beside this module read entries of a stream and hand back only what the caller
needs: Redis decodes the JSON (cjson, in C) and filters, so a reader transfers and parses a few
kilobytes, not every entry of its window. Each is bounded by a count and by the bytes it looks
at, and hands back the first `HEAD_BYTES` of each entry (the shared `lua/heads.lua`, which each
runs after); `letters.head_object` rebuilds a cut entry's leading fields.

- `lua/progress_snapshot.lua` (`OutcomeWindows.snapshot`): the queue's head, kombu's
  unacknowledged messages and the newest outcomes, atomically, so that a request is seen
  exactly once: queued, in flight or finished;
- `lua/newest_matching.lua` (`OutcomeWindows.matching`): the newest entries of the results or
  the dead-letter stream of one request, error code or batch;
- `lua/entry_heads.lua` (`OutcomeWindows.heads`): chosen entries by id (a batch page's records,
  a confirmation's dead letters).

`dead_by_code` and `finished_per_s` count over the newest entries (`grants status`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, cast

import redis

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.outcomes import letters
from grant_worker.tasks.outcomes.queued import (
    QueuedRequest,
    queued_request_head,
    unacked_request_head,
)
from grant_worker.tasks.scripts import register

# What `matching` reads of each entry, and of a window in all: a page's script stays short
# (a few milliseconds: copying an entry into Lua costs about 2 ms a megabyte) and its answer
# small, however large entries grow.
HEAD_BYTES = 4096
BUDGET_BYTES = 1024 * 1024
# The queue's sample and the in-flight messages: half as much, a page needs only their ids.
MESSAGE_BUDGET_BYTES = 512 * 1024


@dataclass(frozen=True)
class RecentOutcome:
    entry_id: str
    outcome: dict[str, Any]
    # The batch ledger's name for how it ended (`batches.STATES`); the status where not given.
    ledger_state: str = ""
    # Why the entry is not an outcome (`letters.outcome_problem`), None when it is one.
    unreadable: str | None = None
    # The size of the whole JSON when `outcome` holds only its first fields.
    cut_from: int | None = None

    @property
    def state(self) -> str:
        return self.ledger_state or str(self.outcome.get("status"))

    @property
    def at(self) -> float:
        """When the outcome was recorded (the stream id's milliseconds), epoch s."""
        return int(self.entry_id.split("-", 1)[0]) / 1000

    @property
    def request_id(self) -> str:
        return str(self.outcome.get("request_id", ""))

    @property
    def batch_id(self) -> str | None:
        batch = self.outcome.get("batch_id")
        return batch if isinstance(batch, str) else None


@dataclass
class Snapshot:
    """Queue, in-flight and newest outcomes as of one instant (`OutcomeWindows.snapshot`)."""

    depth: int
    in_flight: int
    queued: list[QueuedRequest]
    unacked: list[QueuedRequest]
    unacked_read: bool
    recent: list[RecentOutcome]
    # Older outcomes may lie beyond those read (the window, or the byte budget, was reached).
    window_full: bool
    pending_ids_by_batch: dict[str, set[str]] = field(default_factory=dict)
    # The byte budget stopped the queue's sample or the outcomes before their count.
    queue_cut: bool = False
    outcomes_cut: bool = False

    @property
    def queue_fully_read(self) -> bool:
        return self.depth <= len(self.queued) and self.unacked_read

    @property
    def unknown_batch(self) -> int:
        """Messages read whose batch is not known: unreadable, or cut before it."""
        return sum(
            1
            for m in [*self.queued, *self.unacked]
            if m.unreadable or (m.cut_from and not m.batch_id)
        )


@dataclass(frozen=True)
class Matched:
    """One entry `OutcomeWindows.matching` found: its JSON's first `head` bytes (all of it
    when `size` is no more) and the request id it is listed under."""

    entry_id: str
    listed_id: str
    size: int
    head: str


@dataclass(frozen=True)
class Matches:
    """What `OutcomeWindows.matching` found, newest first, the error codes and batches seen
    over the window (for filters), and how many entries it read (the byte budget may stop it
    before the window)."""

    entries: list[Matched]
    codes: list[str]
    batches: list[str]
    read: int


class OutcomeWindows:
    """The two bounded scripts, registered once on `client`."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._keys = keys
        self._snapshot = register(client, __package__, "heads.lua", "progress_snapshot.lua")
        self._matching = register(client, __package__, "heads.lua", "newest_matching.lua")
        self._heads = register(client, __package__, "heads.lua", "entry_heads.lua")

    def snapshot(
        self,
        queue: str,
        *,
        sample: int,
        window: int,
        batch_id: str = "",
        head: int = HEAD_BYTES,
        budget: int = BUDGET_BYTES,
        message_budget: int = MESSAGE_BUDGET_BYTES,
    ) -> Snapshot:
        """The first `sample` messages of `queue`, the in-flight messages (while at most
        `sample`) and the newest `window` outcomes, atomically, each read until its byte budget
        (`budget` for the outcomes, `message_budget` for the messages); the outcomes of
        `batch_id` come as their first `head` bytes, the others as id, status and batch only."""
        depth, inflight, queued, queue_cut, unacked, unacked_whole, recent, read, cut = cast(
            list[Any],
            self._snapshot(
                keys=[queue, self._keys.unacked, self._keys.results],
                args=[sample, window, batch_id, head, budget, message_budget],
            ),
        )
        snap = Snapshot(
            depth=int(depth),
            in_flight=int(inflight),
            queued=[queued_request_head(str(h), int(n)) for n, h in queued],
            unacked=[unacked_request_head(str(h), int(n)) for n, h in unacked],
            unacked_read=bool(unacked_whole),
            recent=[_compact(raw, batch_id) for raw in recent],
            window_full=int(read) >= window or bool(cut),
            queue_cut=bool(queue_cut),
            outcomes_cut=bool(cut),
        )
        for request in [*snap.queued, *snap.unacked]:
            if request.batch_id is not None:
                snap.pending_ids_by_batch.setdefault(request.batch_id, set()).add(
                    str(request.request_id)
                )
        return snap

    def matching(
        self,
        stream: str,
        *,
        window: int,
        field_name: str,
        request_id: str = "",
        code: str = "",
        batch: str = "",
        head: int = HEAD_BYTES,
        budget: int = BUDGET_BYTES,
    ) -> Matches:
        """The newest `window` entries of `stream` (`Keys.results` or `Keys.dead`) whose JSON
        in `field_name` is of `request_id`, `code` and `batch` (each: any when empty), read
        until `budget` bytes of JSON were looked at; each the first `head` bytes of its JSON."""
        found, codes, batches, read = cast(
            list[Any],
            self._matching(
                keys=[stream], args=[window, field_name, request_id, code, batch, head, budget]
            ),
        )
        entries = [Matched(str(m[0]), str(m[1]), int(m[2]), str(m[3])) for m in found]
        return Matches(entries, list(codes), list(batches), int(read))

    def heads(
        self,
        stream: str,
        entry_ids: list[str],
        *,
        field_name: str,
        head: int = HEAD_BYTES,
        budget: int = BUDGET_BYTES,
    ) -> tuple[list[Matched], int]:
        """The entries of `entry_ids` still in `stream`, in order, each the first `head` bytes
        of its JSON in `field_name`, read until `budget` bytes of JSON were looked at; and how
        many of the ids were looked up (fewer than given where the budget stopped it)."""
        if not entry_ids:
            return [], 0
        found, looked = cast(
            list[Any],
            self._heads(keys=[stream], args=[field_name, head, budget, *entry_ids]),
        )
        return [Matched(str(m[0]), str(m[1]), int(m[2]), str(m[3])) for m in found], int(looked)


def dead_by_code(client: redis.Redis, keys: Keys, limit: int) -> tuple[dict[str, int], int]:
    """Dead letters counted by error code over the newest `limit`, most frequent first, and
    how many were counted."""
    counts: Counter[str] = Counter()
    entries: list[Any] = client.xrevrange(keys.dead, count=limit) or []
    for entry_id, fields in entries:
        counts[letters.dead_letter(entry_id, fields or {}).code or "unknown"] += 1
    return dict(counts.most_common()), len(entries)


def finished_per_s(
    client: redis.Redis, keys: Keys, now_s: float, *, window_s: int, sample: int
) -> float:
    """Outcomes recorded per second over the last `window_s`, from at most the newest `sample`
    (stream ids are times)."""
    since_ms = int((now_s - window_s) * 1000)
    recent: list[Any] = client.xrevrange(keys.results, min=f"{since_ms}-0", count=sample) or []
    if len(recent) < sample:
        return round(len(recent) / window_s, 2)
    # A busy fleet: the newest `sample` entries span less than the window.
    oldest_ms = int(str(recent[-1][0]).split("-")[0])
    return round(len(recent) / max(now_s - oldest_ms / 1000, 0.001), 2)


def json_object(raw: Any) -> dict[str, Any]:
    """`raw` decoded as a JSON object; {} for anything else."""
    return letters.json_object(raw)[0]


def recent_outcome(found: Matched) -> RecentOutcome:
    """A results entry `matching` found, readable or not."""
    outcome, why = letters.head_object(found.head, found.size) if found.size else ({}, None)
    cut = found.size if len(found.head.encode()) < found.size else None
    if why is None and cut is None:
        why = letters.outcome_problem(outcome) if found.size else "no outcome in the entry"
    if not isinstance(outcome.get("request_id"), str):
        outcome = {**outcome, "request_id": found.listed_id}
    return RecentOutcome(found.entry_id, outcome, unreadable=why, cut_from=cut)


def _compact(raw: Any, batch_id: str) -> RecentOutcome:
    """An outcome as the snapshot returns it: the head of each of the batch asked for (its
    leading fields), the gist of the others (id, status and batch)."""
    entry_id, request_id, state, batch, size, head = (str(part) for part in raw)
    status = "exists" if state == "exists_differs" else state
    gist: dict[str, Any] = {"request_id": request_id, "status": status, "batch_id": batch or None}
    if batch_id and batch == batch_id:
        found = recent_outcome(Matched(entry_id, request_id, int(size), head))
        # What the script matched holds where the head was cut before it.
        return replace(found, outcome={**gist, **found.outcome}, ledger_state=state)
    return RecentOutcome(entry_id, gist, state)
