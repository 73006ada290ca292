"""Every Redis read of the dashboard, in one module, each bounded.

The dashboard reads only what it shows: small hashes (breaker, learned rate, batch ledgers,
per-second counters), lengths (LLEN, HLEN), and the newest entries of a stream (XREVRANGE with a
COUNT). It never scans a stream or the key space, so a page costs the same with ten outcomes as
with a million.

What it reads, as the owners write it:

- the breaker (`tasks.flow.breaker`): hash `{prefix}breaker`: state (closed|open), cause,
  since, next_probe_at (epoch s), message;
- the learned tenant rate (`tasks.flow.pace`): the pace's hash `{prefix}pace`:
  limit, remaining (last headers), rate (learned free rate, calls/s), pause (epoch µs). No limit
  and no rate: "not learned yet";
- the worker register (`worker.process.recovery.beat`): set `{prefix}workers` of
  `hostname/boot`, and each one's heartbeat `Keys.heartbeat(identity)` (JSON with `at`,
  `busy`, `capacity`, ...);
- the batch ledgers (`tasks.outcomes.batches`): hash `{prefix}batch:{id}` with `total`,
  `queued`, a counter per state (`LEDGER_STATES`) and `first_outcome_ms`/`last_outcome_ms`;
  hash `{prefix}batch-rows:{id}` of request id → state; sorted set `{prefix}batches` of batch
  ids by last activity. Absent: a batch's progress is derived from one atomic, bounded read
  (`_SNAPSHOT`) of the queue's head, the unacknowledged hash and the newest outcomes, and
  marked as an estimate.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from grant_worker.tasks.activity import (
    CALL_SERIES,
    RATE_LIMITED_SERIES,
    outcome_series,
    slot,
)
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.outcomes.records import (
    Pointer,
    outcome_texts,
    parse_pointer,
    trimmed_outcome,
)
from grant_worker.tasks.outcomes.streams import Entry

STATUSES = ("created", "exists", "updated", "failed", "rejected")
# How a batch's request ended, as the batch ledger counts it: `exists_differs` is an `exists`
# whose grant does not match the request; `cancelled` a request withdrawn from its batch.
LEDGER_STATES = (
    "created",
    "exists",
    "exists_differs",
    "updated",
    "failed",
    "rejected",
    "cancelled",
)
# Bounds of every read (entries or items); a page never reads more than these.
RECENT_OUTCOMES = 1000
DEAD_WINDOW = 500
QUEUE_SAMPLE = 1000
BATCH_LIST = 20
BATCH_ROWS_READ = 5000
WORKER_STALE_S = 30

# Other issues' keys (see the module's docstring); named here so the swap is one place.
BREAKER_KEY = "breaker"
US_PER_S = 1_000_000
BATCH_LEDGER_KEY = "batch:"
BATCH_ROWS_KEY = "batch-rows:"
BATCHES_KEY = "batches"
WORKERS_KEY = "workers"
WORKERS_READ = 100

# Scripts read the newest entries of a stream and hand back only what the page needs: Redis
# decodes the JSON (cjson, in C) and filters, so a page transfers and parses a few kilobytes, not
# every entry of its window. Each is bounded by its window (a COUNT), never by the stream.

# KEYS: queue, unacked hash, results stream. ARGV: sample size, outcome window, batch ('' none).
# Returns {depth, in flight, queued messages, unacked messages, outcomes}; an outcome is
# {id, request_id, ledger state, batch_id, full JSON if of ARGV[3] else ''}.
# One script, so that a request is seen exactly once: queued, in flight or finished.
_SNAPSHOT = """
local sample = tonumber(ARGV[1])
local depth = redis.call('LLEN', KEYS[1])
local inflight = redis.call('HLEN', KEYS[2])
local queued = redis.call('LRANGE', KEYS[1], 0, sample - 1)
local unacked = {}
if inflight <= sample then
  unacked = redis.call('HVALS', KEYS[2])
end
local recent = {}
for _, entry in ipairs(redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', tonumber(ARGV[2]))) do
  local fields = entry[2]
  local outcome, rid, status = '', '', ''
  for i = 1, #fields, 2 do
    local name = fields[i]
    if name == 'outcome' then outcome = fields[i + 1]
    elseif name == 'request_id' then rid = fields[i + 1]
    elseif name == 'status' then status = fields[i + 1] end
  end
  -- A plain batch id is matched in C; one with quotes or escapes takes the JSON decoder.
  local batch = string.match(outcome, '"batch_id":"([^"\\\\]*)"')
  if batch == nil then
    batch = ''
    if string.find(outcome, '"batch_id":"', 1, true) then
      local ok, decoded = pcall(cjson.decode, outcome)
      if ok and type(decoded) == 'table' and type(decoded.batch_id) == 'string' then
        batch = decoded.batch_id
      end
    end
  end
  -- The ledger's `exists_differs`, without decoding: an `exists` whose differences are not null.
  if status == 'exists' and not string.find(outcome, '"differences":null', 1, true) then
    status = 'exists_differs'
  end
  if ARGV[3] == '' or batch ~= ARGV[3] then outcome = '' end
  table.insert(recent, {entry[1], rid, status, batch, outcome})
end
return {depth, inflight, queued, unacked, recent}
"""

# KEYS: a stream. ARGV: window, field holding the JSON, request id ('' any), code ('' any),
# batch ('' any). Returns {matches as {id, JSON}, codes seen, batches seen} over the window.
_MATCHING = """
local matches, codes, batches = {}, {}, {}
for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', tonumber(ARGV[1]))) do
  local fields = entry[2]
  local body, rid = '', ''
  for i = 1, #fields, 2 do
    if fields[i] == ARGV[2] then body = fields[i + 1] end
    if fields[i] == 'request_id' then rid = fields[i + 1] end
  end
  if ARGV[3] == '' or rid == ARGV[3] then
    local code, batch = '', ''
    if ARGV[4] ~= '' or ARGV[5] ~= '' or ARGV[3] == '' then
      local ok, decoded = pcall(cjson.decode, body)
      if ok and type(decoded) == 'table' then
        if type(decoded.error) == 'table' and type(decoded.error.code) == 'string' then
          code = decoded.error.code
        end
        if type(decoded.batch_id) == 'string' then batch = decoded.batch_id end
      end
      if code ~= '' then codes[code] = true end
      if batch ~= '' then batches[batch] = true end
    end
    if (ARGV[4] == '' or code == ARGV[4]) and (ARGV[5] == '' or batch == ARGV[5]) then
      table.insert(matches, {entry[1], body})
    end
  end
end
local code_list, batch_list = {}, {}
for code in pairs(codes) do table.insert(code_list, code) end
for batch in pairs(batches) do table.insert(batch_list, batch) end
return {matches, code_list, batch_list}
"""


@dataclass(frozen=True)
class Breaker:
    state: str
    cause: str
    since: float | None
    next_probe_at: float | None
    message: str = ""


@dataclass(frozen=True)
class LearnedRate:
    limit: float | None
    remaining: float | None
    rate: float | None
    pause_until: float | None


@dataclass(frozen=True)
class WorkerBeat:
    hostname: str
    at: float | None
    busy: int | None
    capacity: int | None
    queued: int | None
    idle_s: float | None
    stalled: bool
    alive: bool


@dataclass(frozen=True)
class RecentOutcome:
    entry_id: str
    outcome: dict[str, Any]
    # The batch ledger's name for how it ended (`LEDGER_STATES`); the status where not given.
    ledger_state: str = ""

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
    """Queue, in-flight and newest outcomes as of one instant (see `_SNAPSHOT`)."""

    depth: int
    in_flight: int
    queued: list[dict[str, Any]]
    unacked: list[dict[str, Any]]
    unacked_read: bool
    recent: list[RecentOutcome]
    window_full: bool
    pending_ids_by_batch: dict[str, set[str]] = field(default_factory=dict)

    @property
    def queue_fully_read(self) -> bool:
        return self.depth <= len(self.queued) and self.unacked_read


@dataclass(frozen=True)
class DeadWindow:
    letters: list[DeadEntry]
    codes: list[str]
    batches: list[str]


@dataclass(frozen=True)
class DeadEntry:
    entry_id: str
    letter: dict[str, Any]

    @property
    def request_id(self) -> str:
        return str(self.letter.get("request_id", ""))

    @property
    def code(self) -> str:
        error = self.letter.get("error") or {}
        return str(error.get("code") or "")

    @property
    def batch_id(self) -> str:
        return str(self.letter.get("batch_id") or "")


class DashboardReads:
    """The dashboard's view of one deployment's Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, queue: str) -> None:
        self._client = client
        self._keys = keys
        self._queue = queue
        self._snapshot = client.register_script(_SNAPSHOT)
        self._matching = client.register_script(_MATCHING)

    # -- gauges --------------------------------------------------------------------------

    def queue_depth(self) -> int:
        return int(self._client.llen(self._queue))

    def in_flight(self) -> int:
        return int(self._client.hlen(self._keys.unacked))

    def breaker(self) -> Breaker | None:
        fields = self._hash(self._keys.prefix + BREAKER_KEY)
        if not fields:
            return None
        return Breaker(
            state=fields.get("state", "closed"),
            cause=fields.get("cause", ""),
            since=_number(fields.get("since")),
            next_probe_at=_number(fields.get("next_probe_at")),
            message=fields.get("message", ""),
        )

    def fleet_pause_until(self) -> float | None:
        """Until when (epoch s) a 429 holds the whole fleet, as the pace stores it."""
        pause_us = _number(self._client.hget(self._keys.pace, "pause"))
        return pause_us / US_PER_S if pause_us else None

    def learned_rate(self) -> LearnedRate | None:
        fields = self._hash(self._keys.pace)
        pause_us = _number(fields.get("pause"))
        pause_until = pause_us / US_PER_S if pause_us else None
        if "rate" not in fields and "limit" not in fields:
            return None
        return LearnedRate(
            limit=_number(fields.get("limit")),
            remaining=_number(fields.get("remaining")),
            rate=_number(fields.get("rate")),
            pause_until=pause_until,
        )

    def workers(self, now: float) -> list[WorkerBeat]:
        """The registered workers (at most `WORKERS_READ`) with their heartbeats."""
        register = self._keys.prefix + WORKERS_KEY
        members: list[str] = []
        for member in self._client.sscan_iter(register, count=WORKERS_READ):
            members.append(str(member))
            if len(members) >= WORKERS_READ:
                break
        if not members:
            return []
        members.sort()
        beats = cast(
            list[str | None], self._client.mget([self._keys.heartbeat(m) for m in members])
        )
        found = []
        for member, raw in zip(members, beats, strict=True):
            beat = _json_object(raw) if raw else {}
            current = bool(beat)
            at = _number(beat.get("at")) if current else None
            found.append(
                WorkerBeat(
                    hostname=member,
                    at=at,
                    busy=_int(beat.get("busy")) if current else None,
                    capacity=_int(beat.get("capacity")) if current else None,
                    queued=_int(beat.get("queued")) if current else None,
                    idle_s=_number(beat.get("idle_s")) if current else None,
                    stalled=current and bool(beat.get("stalled")),
                    alive=current and at is not None and now - at <= WORKER_STALE_S,
                )
            )
        return found

    # -- per-second counters ---------------------------------------------------------------

    def activity(self, now: float, seconds: int) -> tuple[int, dict[str, list[int]]]:
        """Counts per second for the `seconds` up to `now`: (first second, {series: counts}).

        One HGETALL per minute touched (16 for a quarter of an hour), pipelined.
        """
        end = int(now)
        start = end - seconds + 1
        minutes = range(slot(start)[0], slot(end)[0] + 1)
        pipe = self._client.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(self._keys.activity(minute))
        hashes = cast(list[dict[str, str]], pipe.execute())
        names = [outcome_series(s) for s in STATUSES] + [CALL_SERIES, RATE_LIMITED_SERIES]
        series = {name: [0] * seconds for name in names}
        for minute, counts in zip(minutes, hashes, strict=True):
            for key, value in counts.items():
                second, _, name = key.partition(":")
                index = minute * 60 + int(second) - start
                if name in series and 0 <= index < seconds:
                    series[name][index] += int(value)
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
            "deliveries": _int(deliveries) or 0,
            "sent": bool(sent),
            "locked": bool(locked),
        }

    def history(self, request_id: str) -> tuple[list[RecentOutcome], list[DeadEntry]]:
        """Outcomes and dead letters of `request_id` among the newest entries (bounded)."""
        outcomes, _, _ = self._match(self._keys.results, RECENT_OUTCOMES, "outcome", request_id)
        letters, _, _ = self._match(self._keys.dead, DEAD_WINDOW, "dead", request_id)
        return (
            [RecentOutcome(entry_id, _json_object(body)) for entry_id, body in outcomes],
            [DeadEntry(entry_id, _json_object(body)) for entry_id, body in letters],
        )

    # -- batches ---------------------------------------------------------------------------

    def batch_ledger(self, batch_id: str) -> dict[str, int] | None:
        fields = self._hash(self._keys.prefix + BATCH_LEDGER_KEY + batch_id)
        if not fields:
            return None
        return {name: _int(value) or 0 for name, value in fields.items()}

    def batch_row_states(self, batch_id: str) -> dict[str, str] | None:
        """Request id → ledger state of a batch's rows (the first `BATCH_ROWS_READ` a scan of
        the batch's own hash yields), or None while there is no rows hash."""
        key = self._keys.prefix + BATCH_ROWS_KEY + batch_id
        states: dict[str, str] = {}
        for request_id, state in self._client.hscan_iter(key, count=1000):
            states[str(request_id)] = str(state)
            if len(states) >= BATCH_ROWS_READ:
                break
        return states or None

    def outcome_records(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The recorded outcomes of `request_ids` (one MGET of the records, then one pipeline
        of their results entries; callers bound the list)."""
        if not request_ids:
            return {}
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
                # Written in full by an earlier version: shown as it is.
                found[rid] = _json_object(raw)
                continue
            try:
                pointers[rid] = parse_pointer(raw)
            except ValueError:
                found[rid] = {}
        for rid, text in outcome_texts(self._client, self._keys, pointers).items():
            found[rid] = (
                _json_object(text)
                if text
                else trimmed_outcome(rid, pointers[rid]).model_dump(mode="json")
            )
        return found

    def active_batches(self) -> list[str] | None:
        """Batch ids by last activity from the ledgers' index, or None while there is none."""
        if not self._client.exists(self._keys.prefix + BATCHES_KEY):
            return None
        return cast(
            list[str],
            self._client.zrevrange(self._keys.prefix + BATCHES_KEY, 0, BATCH_LIST - 1),
        )

    def snapshot(self, batch_id: str = "") -> Snapshot:
        """The queue's head, the in-flight messages and the newest outcomes, atomically; the
        outcomes of `batch_id` come whole, the others as id, status and batch only."""
        depth, inflight, queued, unacked, recent = cast(
            list[Any],
            self._snapshot(
                keys=[self._queue, self._keys.unacked, self._keys.results],
                args=[QUEUE_SAMPLE, RECENT_OUTCOMES, batch_id],
            ),
        )
        snap = Snapshot(
            depth=int(depth),
            in_flight=int(inflight),
            queued=[m for m in (_queued_request(raw) for raw in queued) if m],
            unacked=[m for m in (_unacked_request(raw) for raw in unacked) if m],
            unacked_read=int(inflight) <= QUEUE_SAMPLE,
            recent=[_compact(raw) for raw in recent],
            window_full=len(recent) >= RECENT_OUTCOMES,
        )
        for request in [*snap.queued, *snap.unacked]:
            batch = request.get("batch_id")
            if isinstance(batch, str):
                snap.pending_ids_by_batch.setdefault(batch, set()).add(
                    str(request.get("request_id"))
                )
        return snap

    # -- dead letters ----------------------------------------------------------------------

    def dead_letters(self, *, code: str = "", batch_id: str = "") -> DeadWindow:
        """The newest dead letters (of `code` and `batch_id`, where given), newest first."""
        matches, codes, batches = self._match(
            self._keys.dead, DEAD_WINDOW, "dead", "", code, batch_id
        )
        return DeadWindow(
            letters=[DeadEntry(entry_id, _json_object(body)) for entry_id, body in matches],
            codes=sorted(codes),
            batches=sorted(batches),
        )

    def dead_letter(self, entry_id: str) -> DeadEntry | None:
        entries = cast(list[Entry], self._client.xrange(self._keys.dead, entry_id, entry_id))
        if not entries:
            return None
        found_id, fields = entries[0]
        return DeadEntry(found_id, _json_object(fields.get("dead")))

    def dead_count(self) -> int:
        return int(self._client.xlen(self._keys.dead))

    def results_count(self) -> int:
        return int(self._client.xlen(self._keys.results))

    # -- helpers ---------------------------------------------------------------------------

    def _match(
        self,
        key: str,
        window: int,
        field_name: str,
        request_id: str,
        code: str = "",
        batch: str = "",
    ) -> tuple[list[tuple[str, str]], list[str], list[str]]:
        matches, codes, batches = cast(
            list[Any],
            self._matching(keys=[key], args=[window, field_name, request_id, code, batch]),
        )
        return [(str(m[0]), str(m[1])) for m in matches], codes, batches

    def _hash(self, key: str) -> dict[str, str]:
        return cast(dict[str, str], self._client.hgetall(key))


def _compact(raw: Any) -> RecentOutcome:
    """An outcome as `_SNAPSHOT` returns it: whole for the batch asked for, else its gist."""
    entry_id, request_id, state, batch_id, whole = (str(part) for part in raw)
    if whole:
        return RecentOutcome(entry_id, _json_object(whole), state)
    status = "exists" if state == "exists_differs" else state
    gist = {"request_id": request_id, "status": status, "batch_id": batch_id or None}
    return RecentOutcome(entry_id, gist, state)


def _queued_request(raw: str) -> dict[str, Any] | None:
    """The request inside a kombu message on the queue (Celery protocol 2, JSON body)."""
    message = _json_object(raw)
    return _request_of(message)


def _unacked_request(raw: str) -> dict[str, Any] | None:
    """kombu keeps an unacknowledged message as `[message, exchange, routing_key]`."""
    try:
        wrapped = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if isinstance(wrapped, list) and wrapped and isinstance(wrapped[0], dict):
        return _request_of(wrapped[0])
    return None


def _request_of(message: dict[str, Any]) -> dict[str, Any] | None:
    body = message.get("body")
    if not isinstance(body, str):
        return None
    properties = message.get("properties") or {}
    try:
        if properties.get("body_encoding") == "base64":
            body = base64.b64decode(body).decode("utf-8")
        decoded = json.loads(body)
    except (ValueError, TypeError):
        return None
    headers = message.get("headers") or {}
    request: Any = None
    if isinstance(decoded, list) and len(decoded) >= 2 and isinstance(decoded[1], dict):
        request = decoded[1].get("request")
    if isinstance(request, str):
        request = _json_object(request)
    if not isinstance(request, dict):
        request = {}
    return {
        "request_id": request.get("request_id") or headers.get("id"),
        "batch_id": request.get("batch_id"),
    }


def _json_object(raw: Any) -> dict[str, Any]:
    try:
        value = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None
