"""The Python API for pipelines: submit requests, wait for their outcomes, read outcomes.

    client = GrantClient(Settings())
    request_id = client.submit({"grant": {"client_id": "abc", "audience": "https://api/"}})
    outcome = client.wait(request_id, timeout_s=30)

Requests are validated here, before they are enqueued, with the same model the worker uses.
Messages are pushed as kombu's Redis transport pushes them (Celery protocol 2, JSON, LPUSH on
the queue's list), in chunks, without a round trip per message: 10,000 rows enqueue in about a
second, and a batch's ledger is written in the same step (`tasks.outcomes.batches`).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import time
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

import redis
from kombu import serialization

from grant_worker.config.settings import Settings
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.inspection import TASK_NAME
from grant_worker.tasks.messages.models import GrantRequest, Outcome
from grant_worker.tasks.messages.validation import parse_request
from grant_worker.tasks.outcomes.batches import register_mark_queued
from grant_worker.tasks.outcomes.letters import outcome_entry
from grant_worker.tasks.outcomes.recorder import make_recorder
from grant_worker.tasks.outcomes.records import resolve
from grant_worker.tasks.outcomes.streams import (
    entries_after,
    entries_before,
    entries_between,
    newest_id,
)
from grant_worker.worker.client.broker import broker_errors

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)
# Told of each results entry that is not an outcome: (entry id, why).
Unreadable = Callable[[str, str], None]

POLL_START_S = 0.05
POLL_MAX_S = 0.5
STREAM_PAGE = 500
ENQUEUE_CHUNK = 500  # messages per Redis call when enqueueing
READ_CHUNK = 1000  # outcome records per MGET


class WaitTimeout(TimeoutError):
    """Raised when an outcome did not arrive within the timeout."""


P = ParamSpec("P")
R = TypeVar("R")


def _redis_guarded(
    method: Callable[Concatenate[GrantClient, P], R],
) -> Callable[Concatenate[GrantClient, P], R]:
    """Any Redis error of `method`, or of the iterator it returns, as `BrokerUnavailable`."""

    @functools.wraps(method)
    def guarded(self: GrantClient, *args: P.args, **kwargs: P.kwargs) -> R:
        with broker_errors(self.settings):
            result = method(self, *args, **kwargs)
        if isinstance(result, types.GeneratorType):
            return cast(R, _guarded_iterator(self.settings, result))
        return result

    return guarded


def _guarded_iterator(settings: Settings, items: Iterator[Outcome]) -> Iterator[Outcome]:
    with broker_errors(settings):
        yield from items


class GrantClient:
    """Producer and reader for one deployment (one Redis, one queue, one key prefix).

    Every call that reaches Redis raises `worker.client.broker.BrokerUnavailable` when Redis
    fails it (the Redis error as its cause), never a `redis` exception.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: redis.Redis | None = None,
        app: Celery | None = None,
    ) -> None:
        self.settings = settings
        self.keys = Keys(settings.grants_key_prefix)
        self.redis = client or make_redis(settings)
        # Built on first use: reading outcomes needs no Celery app.
        self._celery = app
        self._recorder = make_recorder(settings, self.redis)
        self._mark_queued = register_mark_queued(self.redis)

    def close(self) -> None:
        self.redis.close()
        if self._celery is not None:
            self._celery.close()

    def __enter__(self) -> GrantClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def celery_app(self) -> Celery:
        """The sending-only Celery app of this deployment (`client.celery_producer`)."""
        if self._celery is None:
            # Imported on first send: Celery loads click, which a reader of outcomes never needs.
            from grant_worker.worker.client.celery_producer import make_producer_app

            self._celery = make_producer_app(self.settings)
        return self._celery

    @staticmethod
    def prepare(request: GrantRequest | dict[str, Any] | str) -> GrantRequest:
        """Validate `request` and give it a request id if it has none.

        Raises `tasks.errors.RequestInvalid` naming each broken rule.
        """
        parsed = request if isinstance(request, GrantRequest) else parse_request(request)
        if parsed.request_id is None:
            parsed = parsed.model_copy(update={"request_id": f"req-{uuid.uuid4().hex}"})
        return parsed

    def submit(self, request: GrantRequest | dict[str, Any] | str) -> str:
        """Enqueue one request; returns its request id (also the Celery task id)."""
        return self.submit_many([request])[0]

    @_redis_guarded
    def revoke(
        self,
        *,
        client_id: str | None = None,
        default_for: str | None = None,
        audience: str | None = None,
        subject_type: str | None = None,
        grant_id: str | None = None,
        request_id: str | None = None,
        batch_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Enqueue the revoke of one grant, named by `client_id` (or `default_for`) and
        `audience` (and `subject_type`), or by `grant_id`; returns its request id. Its outcome
        is `revoked` or `absent` (both done), or `rejected` with `protected`.

        Raises `tasks.errors.RequestInvalid` naming each broken rule.
        """
        envelope = self.revoke_request(
            client_id=client_id, default_for=default_for, audience=audience,
            subject_type=subject_type, grant_id=grant_id, request_id=request_id,
            batch_id=batch_id, metadata=metadata,
        )  # fmt: skip
        return self.submit(envelope)

    @staticmethod
    def revoke_request(
        *,
        client_id: str | None = None,
        default_for: str | None = None,
        audience: str | None = None,
        subject_type: str | None = None,
        grant_id: str | None = None,
        request_id: str | None = None,
        batch_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The envelope of the revoke `revoke` enqueues (for `prepare`, to look before)."""
        envelope: dict[str, Any] = {"action": "revoke"}
        named = {"client_id": client_id, "default_for": default_for, "audience": audience,
                 "subject_type": subject_type}  # fmt: skip
        if any(value is not None for value in named.values()):
            envelope["grant"] = {name: value for name, value in named.items() if value is not None}
        extra = {"grant_id": grant_id, "request_id": request_id, "batch_id": batch_id,
                 "metadata": metadata}  # fmt: skip
        envelope.update({name: value for name, value in extra.items() if value is not None})
        return envelope

    @_redis_guarded
    def submit_many(self, requests: Iterable[GrantRequest | dict[str, Any] | str]) -> list[str]:
        """Enqueue requests; returns their ids in order.

        Messages are written as Celery's Redis transport writes them (protocol 2, JSON), a chunk
        per Redis call: for a batch, in the same script as the batch's ledger entries, so that
        what is queued and what the ledger says is queued never part.
        """
        prepared = [self.prepare(request) for request in requests]
        for start in range(0, len(prepared), ENQUEUE_CHUNK):
            chunk = prepared[start : start + ENQUEUE_CHUNK]
            by_batch: dict[str | None, list[tuple[str, str]]] = {}
            for request in chunk:
                assert request.request_id is not None
                by_batch.setdefault(request.batch_id, []).append(
                    (request.request_id, self._queue_item(request))
                )
            self._push(by_batch)
        return [str(request.request_id) for request in prepared]

    def _push(self, by_batch: dict[str | None, list[tuple[str, str]]]) -> None:
        queue = self.settings.grants_queue
        now_ms = int(time.time() * 1000)
        for batch_id, items in by_batch.items():
            if batch_id is None:
                self.redis.lpush(queue, *[item for _rid, item in items])
                continue
            self._mark_queued(
                keys=[queue, self.keys.batch(batch_id), self.keys.batch_rows(batch_id),
                      self.keys.batches],
                args=[batch_id, now_ms, self.settings.grants_record_ttl_s,
                      *[part for pair in items for part in pair]],
            )  # fmt: skip

    def _queue_item(self, request: GrantRequest) -> str:
        """The queue item kombu's Redis transport would push for `request` (see module doc)."""
        assert request.request_id is not None
        headers, properties, body, _sent_event = self.celery_app.amqp.as_task_v2(
            request.request_id, TASK_NAME, args=(), kwargs={"request": request.wire()}
        )
        content_type, encoding, payload = serialization.dumps(body, serializer="json")
        data = payload if isinstance(payload, bytes) else payload.encode(encoding)
        envelope = {
            "body": base64.b64encode(data).decode("ascii"),
            "content-encoding": encoding,
            "content-type": content_type,
            "headers": headers,
            "properties": {
                **properties,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": self.settings.grants_queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        return json.dumps(envelope)

    @_redis_guarded
    def recorded_many(self, request_ids: Sequence[str]) -> dict[str, Outcome]:
        """The recorded outcomes of those of `request_ids` that have one (MGET of the records
        in chunks, then their results entries, pipelined; `records.resolve`)."""
        found: dict[str, Outcome] = {}
        for start in range(0, len(request_ids), READ_CHUNK):
            chunk = request_ids[start : start + READ_CHUNK]
            values = self.redis.mget([self.keys.outcome_record(rid) for rid in chunk])
            records = dict(zip(chunk, cast(list[str | None], values), strict=True))
            found.update(resolve(self.redis, self.keys, records))
        return found

    @_redis_guarded
    def outcome(self, request_id: str) -> Outcome | None:
        """The recorded outcome of `request_id`, or None while it has none."""
        return self._recorder.recorded(request_id)

    @_redis_guarded
    def wait(self, request_id: str, *, timeout_s: float) -> Outcome:
        """Block until `request_id` has an outcome; raises `WaitTimeout` after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        pause_s = POLL_START_S
        while True:
            outcome = self.outcome(request_id)
            if outcome is not None:
                return outcome
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"no outcome for {request_id} within {timeout_s:g} s")
            time.sleep(min(pause_s, remaining))
            pause_s = min(pause_s * 2, POLL_MAX_S)

    @_redis_guarded
    def wait_many(
        self,
        request_ids: Iterable[str],
        *,
        timeout_s: float,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[Outcome]:
        """Yield outcomes of `request_ids` as they are recorded, in any order.

        Follows the results stream rather than polling each id. Raises `WaitTimeout` when some
        are still missing after `timeout_s`; those yielded before stay yielded. Returns early,
        within about a second, once `stop()` is true (the caller knows what is missing).
        """
        missing = set(request_ids)
        deadline = time.monotonic() + timeout_s
        # Outcomes recorded before we started following are read from their records.
        last_id = newest_id(self.redis, self.keys.results)
        for outcome in self.recorded_many(sorted(missing)).values():
            missing.discard(outcome.request_id)
            yield outcome
        while missing:
            if stop is not None and stop():
                return
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                raise WaitTimeout(f"{len(missing)} requests have no outcome after {timeout_s:g} s")
            entries = entries_after(
                self.redis,
                self.keys.results,
                last_id,
                count=STREAM_PAGE,
                block_ms=min(remaining_ms, 1000),
            )
            for entry_id, fields in entries:
                last_id = entry_id
                if fields.get("request_id") in missing:
                    found = _decoded(entry_id, fields, None)
                    if found is not None:
                        missing.discard(found.request_id)
                        yield found

    @_redis_guarded
    def results(
        self,
        *,
        request_id: str | None = None,
        batch_id: str | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        follow: bool = False,
        from_start: bool = False,
        on_unreadable: Unreadable | None = None,
    ) -> Iterator[Outcome]:
        """Outcomes, oldest first.

        With `request_id`: its recorded outcome (no scan), or with `follow` the outcome once it
        is recorded. Otherwise the results stream from `since_ms` (epoch ms) or its start,
        filtered by batch and status; with `follow`, new outcomes as they come, starting now
        unless `from_start`. An entry that is not an outcome is skipped and passed to
        `on_unreadable` (entry id, why), else logged.
        """
        # Where "now" is, taken at the call, not at the first `next()`: an outcome recorded in
        # between is then after it.
        now_id = newest_id(self.redis, self.keys.results)
        if request_id is not None:
            return self._one_result(request_id, follow=follow, after=now_id)
        return self._results(batch_id, status, since_ms, follow, from_start, now_id, on_unreadable)

    @_redis_guarded
    def newest_results(
        self,
        count: int,
        *,
        batch_id: str | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        on_unreadable: Unreadable | None = None,
    ) -> list[Outcome]:
        """The newest `count` outcomes matching the filters, oldest first among them (the
        results stream read backwards, a page at a time, until enough match). An entry that is
        not an outcome is skipped and passed to `on_unreadable` (entry id, why), else logged."""
        found: list[Outcome] = []
        low = f"{since_ms}-0" if since_ms is not None else "-"
        high = "+"
        while len(found) < count:
            page = entries_before(
                self.redis, self.keys.results, high=high, low=low, count=STREAM_PAGE
            )
            for entry_id, fields in page:
                high = f"({entry_id}"
                outcome = _matching(entry_id, fields, batch_id, status, on_unreadable)
                if outcome is not None:
                    found.append(outcome)
                    if len(found) == count:
                        break
            if len(page) < STREAM_PAGE:
                break
        return found[::-1]

    def _results(
        self,
        batch_id: str | None,
        status: str | None,
        since_ms: int | None,
        follow: bool,
        from_start: bool,
        now_id: str,
        on_unreadable: Unreadable | None,
    ) -> Iterator[Outcome]:
        if follow and not from_start and since_ms is None:
            last_id = now_id
        else:
            last_id = self._scan_end(since_ms)
            low = f"{since_ms}-0" if since_ms is not None else "-"
            exclusive = False
            while True:
                bound = f"({last_id}" if exclusive else low
                page = entries_between(self.redis, self.keys.results, low=bound, count=STREAM_PAGE)
                for entry_id, fields in page:
                    last_id, exclusive = entry_id, True
                    outcome = _matching(entry_id, fields, batch_id, status, on_unreadable)
                    if outcome is not None:
                        yield outcome
                if len(page) < STREAM_PAGE:
                    break
            if not follow:
                return
        while True:
            for entry_id, fields in entries_after(
                self.redis, self.keys.results, last_id, count=STREAM_PAGE, block_ms=1000
            ):
                last_id = entry_id
                outcome = _matching(entry_id, fields, batch_id, status, on_unreadable)
                if outcome is not None:
                    yield outcome

    def _scan_end(self, since_ms: int | None) -> str:
        # Where following resumes when the scan read nothing: just before its start, so that an
        # outcome recorded since the scan began is not skipped.
        return f"{since_ms - 1}-0" if since_ms else "0-0"

    def _one_result(self, request_id: str, *, follow: bool, after: str) -> Iterator[Outcome]:
        # The stream position was taken first: an outcome recorded between the two reads is
        # then on the stream after it.
        last_id = after
        outcome = self.outcome(request_id)
        if outcome is not None:
            yield outcome
            return
        while follow:
            for entry_id, fields in entries_after(
                self.redis, self.keys.results, last_id, count=STREAM_PAGE, block_ms=1000
            ):
                last_id = entry_id
                if fields.get("request_id") == request_id:
                    outcome = _decoded(entry_id, fields, None)
                    if outcome is not None:
                        yield outcome
                        return


def _decoded(
    entry_id: str, fields: dict[str, str], on_unreadable: Unreadable | None
) -> Outcome | None:
    outcome, why = outcome_entry(fields)
    if why is not None:
        if on_unreadable is not None:
            on_unreadable(entry_id, why)
        else:
            log.warning("results entry %s skipped: unreadable, %s", entry_id, why)
    return outcome


def _matching(
    entry_id: str,
    fields: dict[str, str],
    batch_id: str | None,
    status: str | None,
    on_unreadable: Unreadable | None,
) -> Outcome | None:
    if status is not None and fields.get("status") != status:
        return None
    outcome = _decoded(entry_id, fields, on_unreadable)
    if outcome is None:
        return None
    if batch_id is not None and outcome.batch_id != batch_id:
        return None
    return outcome
