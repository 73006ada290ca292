"""Recording and publishing outcomes: the one place a request's end is written.

The per-request record, the results stream entry, the dead letter and the live event are
written by one Lua script (`lua/record_outcome_once.lua`), atomically: either a request has a
recorded outcome and a stream entry, or neither. The record makes redeliveries cheap and safe:
a request whose outcome is recorded is acknowledged without calling Auth0 again. The record is
a short pointer to the results entry (`tasks.outcomes.records`), and the same step deletes the
request's in-flight claim, moving its fingerprint into the record (`tasks.outcomes.claims`).
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Callable
from typing import Any

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.activity import RETENTION_S, ActivityCounter, outcome_series
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import Outcome
from grant_worker.tasks.outcomes.batches import COUNT_IN_BATCH, batch_argument, batch_keys
from grant_worker.tasks.outcomes.records import STATUS_LETTERS, resolve
from grant_worker.tasks.ride_along import RideAlong
from grant_worker.tasks.scripts import ScriptPipeline, register


def dead_letter(outcome: Outcome, original: Any) -> dict[str, Any]:
    """What the dead stream keeps: the outcome's facts and the request as it arrived.

    `original` is the parsed request where it could be read, else the raw text.
    """
    return {
        "request_id": outcome.request_id,
        "batch_id": outcome.batch_id,
        "status": outcome.status,
        "error": outcome.error.model_dump(mode="json") if outcome.error else None,
        "attempts": outcome.attempts,
        "received_at": outcome.received_at,
        "finished_at": outcome.finished_at,
        "request": original,
    }


def serialisable(outcome: Outcome) -> tuple[Outcome, str]:
    """The outcome and its JSON; where it cannot be serialised (metadata a producer nested too
    deep for the serialiser, say), the same outcome without its free-form parts, so that the
    request still ends with an outcome instead of failing on every delivery."""
    try:
        return outcome, outcome.to_json()
    except (ValueError, TypeError, RecursionError):
        pass
    details = {**((outcome.error.details or {}) if outcome.error else {})}
    note = "metadata and differences dropped: they could not be serialised"
    error = (
        outcome.error.model_copy(update={"details": {**details, "note": note}})
        if (outcome.error)
        else None
    )
    stripped = outcome.model_copy(update={"metadata": None, "differences": None, "error": error})
    try:
        return stripped, stripped.to_json()
    except (ValueError, TypeError, RecursionError):
        bare = stripped.model_copy(update={"grant": None})
        return bare, bare.to_json()


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel = 6
_SHORT_REPR.maxstring = 1024
_SHORT_REPR.maxother = 200


def _dead_json(outcome: Outcome, original: Any) -> str:
    try:
        return json.dumps(dead_letter(outcome, original), separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        # Keep a bounded, recursion-free picture of what arrived.
        shown = _SHORT_REPR.repr(original)
        return json.dumps(dead_letter(outcome, {"unserialisable": shown}), separators=(",", ":"))


# How long a recorded outcome may take to reach a replica (Sentinel deployments only).
REPLICA_WAIT_MS = 2000


class OutcomeRecorder:
    """Writes each request's single outcome (and dead letter) to Redis."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        record_ttl_s: int,
        stream_maxlen: int,
        queue: str = "grants",
        min_replicas: int = 0,
        replica_wait_ms: int = REPLICA_WAIT_MS,
        count_outcomes_later: bool = False,
    ) -> None:
        self._client = client
        self._keys = keys
        self._record_ttl_s = record_ttl_s
        self._stream_maxlen = stream_maxlen
        self._min_replicas = min_replicas
        self._replica_wait_ms = replica_wait_ms
        # The batch ledger's block runs first, in the same script: counters move with the record.
        self._script = register(client, __package__, COUNT_IN_BATCH, "record_outcome_once.lua")
        self._queue = queue
        self._activity = ActivityCounter(client, keys)
        # A worker's outcomes are counted for the dashboard from memory, a flush every half
        # second, instead of by two commands in every record; a short-lived process counts in
        # the record itself, so that its counts never wait on a flush.
        self._count_outcomes_later = count_outcomes_later

    def record(
        self,
        outcome: Outcome,
        *,
        original: Any = None,
        withdraw: str | None = None,
        release: bytes | None = None,
        released: Callable[[], None] | None = None,
        later: RideAlong | None = None,
        fingerprint: str = "",
    ) -> bool:
        """Record `outcome` unless one is already recorded for its request id.

        Failed and rejected outcomes also go to the dead stream with `original`.
        Returns False when an outcome was already recorded (nothing is written then).
        With `withdraw` (an exact item of the queue), the item is removed in the same step, and
        nothing is written when it is no longer on the queue (a worker took it): False.
        With `release` (the token of the request lock held), the lock is released in the same
        step, whether or not this outcome was written, and `released` is called after.
        With `later`, the request's queued writes go ahead of the record, in its round trip.
        `fingerprint`: the request's own, when the claim on its id is known to be its own (the
        record takes it without reading the claim).
        """
        series = outcome_series(outcome.status)
        activity_key, activity_field = self._activity.field_of(series)
        if self._count_outcomes_later:
            activity_field = ""
        outcome, outcome_json = serialisable(outcome)
        dead = ""
        if not outcome.done:
            dead = _dead_json(outcome, original)
        # Once recorded, the record answers every redelivery: the delivery count goes. The
        # "may have been sent" marker goes only with a good end; a failed request can be
        # replayed, and its replay must still know that its create may have reached Auth0.
        deliveries, sent = self._keys.request_markers(outcome.request_id)
        markers = (deliveries, sent) if outcome.done else (deliveries,)
        keys = [
            self._keys.outcome_record(outcome.request_id),
            self._keys.results,
            self._keys.dead,
            self._keys.events,
            self._keys.claim(outcome.request_id),
            *markers,
            self._keys.lock(outcome.request_id),
            activity_key,
            *batch_keys(self._keys, outcome.batch_id, self._queue),
        ]
        args: list[str | int | bytes] = [
            outcome_json,
            outcome.request_id,
            outcome.status,
            self._record_ttl_s,
            self._stream_maxlen,
            dead,
            len(markers),
            STATUS_LETTERS[outcome.status],
            release or "",
            activity_field,
            RETENTION_S,
            fingerprint,
            batch_argument(outcome, ttl_s=self._record_ttl_s, withdraw=withdraw),
        ]
        if later is None and not self._min_replicas:
            written = self._script(keys=keys, args=args)
        else:
            written = self._record_in_pipeline(outcome.request_id, keys, args, later)
        if released is not None and int(written) >= 0:
            released()
        if self._count_outcomes_later and int(written) == 1:
            self._activity.count_later(series)
        return int(written) == 1

    def _record_in_pipeline(
        self, request_id: str, keys: list[str], args: list[Any], later: RideAlong | None
    ) -> Any:
        def fill(pipe: ScriptPipeline) -> None:
            pipe.script(self._script, keys, args)
            if self._min_replicas:
                # Behind Sentinel: a primary that has just been replaced still takes writes for
                # a moment, and the resync discards them. Acknowledging the message on the
                # strength of such a write loses the request, so the write must reach a replica
                # first (WAIT, on the same connection: the same pipeline).
                pipe.command("WAIT", self._min_replicas, self._replica_wait_ms, after_scripts=True)

        results = (later or self.ride_along()).send_with(fill)
        failed = next((result for result in results if isinstance(result, Exception)), None)
        if failed is not None:
            raise failed
        if self._min_replicas and int(results[1]) < self._min_replicas:
            raise redis.ConnectionError(
                f"the outcome of {request_id} reached {results[1]} of "
                f"{self._min_replicas} replica(s) within {self._replica_wait_ms} ms; not "
                "acknowledged (a failover may be under way)"
            )
        return results[0]

    def ride_along(self) -> RideAlong:
        """Where one request's writes wait to go with its outcome record (`tasks.ride_along`)."""
        return RideAlong(self._client)

    def publish(self, outcome: Outcome, *, original: Any = None) -> None:
        """Put `outcome` on the results stream (and the dead stream, and the live channel)
        without touching the request's record: for an answer that must not replace the one
        the request id already has (`request_id_reused`)."""
        maxlen = self._stream_maxlen or None
        fields = {
            "request_id": outcome.request_id,
            "status": outcome.status,
            "outcome": outcome.to_json(),
        }
        pipe = self._client.pipeline(transaction=True)
        pipe.xadd(self._keys.results, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
        if not outcome.done:
            dead = json.dumps(dead_letter(outcome, original), separators=(",", ":"))
            pipe.xadd(
                self._keys.dead,
                {"request_id": outcome.request_id, "status": outcome.status, "dead": dead},
                maxlen=maxlen,
                approximate=True,
            )
        pipe.publish(self._keys.events, outcome.to_json())
        pipe.execute()

    def recorded(self, request_id: str, *, confirmed: bool = False) -> Outcome | None:
        """The outcome recorded for `request_id`, if any: from its results entry, or, once
        the stream was trimmed past it, the request id and status the record still holds
        (`records.trimmed_outcome`), enough to acknowledge a redelivery without a call.

        `confirmed`: behind Sentinel, only from a primary that still has a replica (WAIT on the
        same connection); a demoted primary still shows records its resync will discard, and a
        message acknowledged on the strength of one is lost. Raises `redis.ConnectionError`
        when no replica confirms.
        """
        key = self._keys.outcome_record(request_id)
        if not (confirmed and self._min_replicas):
            return self.from_record(request_id, self._client.get(key))
        pipe = self._client.pipeline(transaction=False)
        pipe.get(key)
        pipe.execute_command("WAIT", self._min_replicas, self._replica_wait_ms)
        try:
            raw, replicas = pipe.execute()
        except redis.ResponseError as exc:
            if "replica" not in str(exc):
                raise
            # Reads still work on a demoted primary, so nothing told the pool the master moved:
            # drop its connections, the next ones ask Sentinel for the new master.
            self._client.connection_pool.disconnect()
            raise redis.ConnectionError(
                f"read {request_id} from a replica (the master moved); reconnecting"
            ) from exc
        if raw and int(replicas) < self._min_replicas:
            raise redis.ConnectionError(
                f"the outcome of {request_id} is on a primary no replica confirms; "
                "not taken as recorded (a failover may be under way)"
            )
        return self.from_record(request_id, raw)

    def from_record(self, request_id: str, raw: Any) -> Outcome | None:
        # The record is a pointer: the outcome is read from its results entry (or, trimmed,
        # told from the pointer alone).
        return resolve(self._client, self._keys, {request_id: raw}).get(request_id) if raw else None

    @property
    def confirms_reads(self) -> bool:
        """Whether a record counts only once a replica confirms it (behind Sentinel)."""
        return bool(self._min_replicas)

    def forget(self, request_id: str) -> None:
        """Drop the record so that a replay of the same request id is worked on again."""
        self._client.delete(self._keys.outcome_record(request_id))


def make_recorder(
    settings: Settings, client: redis.Redis, *, count_outcomes_later: bool = False
) -> OutcomeRecorder:
    """The recorder of `settings`' deployment; `count_outcomes_later` in a long-lived worker."""
    return OutcomeRecorder(
        client,
        Keys(settings.grants_key_prefix),
        record_ttl_s=settings.grants_record_ttl_s,
        stream_maxlen=settings.grants_stream_maxlen,
        queue=settings.grants_queue,
        # A Sentinel deployment has a replica by definition: an outcome counts once it is there.
        min_replicas=1 if settings.uses_sentinel else 0,
        count_outcomes_later=count_outcomes_later,
    )
