"""The Python API for pipelines: submit requests, wait for their outcomes, read outcomes.

    client = GrantClient(Settings())
    request_id = client.submit({"grant": {"client_id": "abc", "audience": "https://api/"}})
    outcome = client.wait(request_id, timeout_s=30)

Requests are validated here, before they are enqueued, with the same model the worker uses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from celery import Celery

from grant_worker.config.settings import Settings
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.gate import TASK_NAME
from grant_worker.tasks.messages.models import GrantRequest, Outcome
from grant_worker.tasks.messages.validation import parse_request
from grant_worker.tasks.outcomes.recorder import make_recorder
from grant_worker.tasks.outcomes.streams import entries_after, entries_between, newest_id
from grant_worker.worker.app import create_app

POLL_START_S = 0.05
POLL_MAX_S = 0.5
STREAM_PAGE = 500


class WaitTimeout(TimeoutError):
    """Raised when an outcome did not arrive within the timeout."""


class GrantClient:
    """Producer and reader for one deployment (one Redis, one queue, one key prefix)."""

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
        self._app = app or create_app(settings)
        self._recorder = make_recorder(settings, self.redis)

    def close(self) -> None:
        self.redis.close()
        self._app.close()

    def __enter__(self) -> GrantClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def submit_many(self, requests: Iterable[GrantRequest | dict[str, Any] | str]) -> list[str]:
        """Enqueue requests over one broker connection; returns their ids in order."""
        prepared = [self.prepare(request) for request in requests]
        ids: list[str] = []
        with self._app.producer_or_acquire() as producer:
            for request in prepared:
                assert request.request_id is not None
                self._app.send_task(
                    TASK_NAME,
                    kwargs={"request": request.wire()},
                    task_id=request.request_id,
                    queue=self.settings.grants_queue,
                    producer=producer,
                )
                ids.append(request.request_id)
        return ids

    def outcome(self, request_id: str) -> Outcome | None:
        """The recorded outcome of `request_id`, or None while it has none."""
        return self._recorder.recorded(request_id)

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

    def wait_many(self, request_ids: Iterable[str], *, timeout_s: float) -> Iterator[Outcome]:
        """Yield outcomes of `request_ids` as they are recorded, in any order.

        Follows the results stream rather than polling each id. Raises `WaitTimeout` when some
        are still missing after `timeout_s`; those yielded before stay yielded.
        """
        missing = set(request_ids)
        deadline = time.monotonic() + timeout_s
        # Outcomes recorded before we started following are read from their records.
        last_id = newest_id(self.redis, self.keys.results)
        for request_id in sorted(missing):
            outcome = self.outcome(request_id)
            if outcome is not None:
                missing.discard(request_id)
                yield outcome
        while missing:
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
                    missing.discard(fields["request_id"])
                    yield Outcome.model_validate_json(fields["outcome"])

    def results(
        self,
        *,
        request_id: str | None = None,
        batch_id: str | None = None,
        follow: bool = False,
        start: str = "-",
    ) -> Iterator[Outcome]:
        """Outcomes from the results stream, oldest first; with `follow`, then new ones live."""
        last_id = start
        exclusive = False
        while True:
            low = f"({last_id}" if exclusive else last_id
            page = entries_between(self.redis, self.keys.results, low=low, count=STREAM_PAGE)
            for entry_id, fields in page:
                last_id, exclusive = entry_id, True
                outcome = _matching(fields, request_id, batch_id)
                if outcome is not None:
                    yield outcome
            if len(page) < STREAM_PAGE:
                break
        if not follow:
            return
        if not exclusive:
            # Nothing was read: follow from the very start, so that an outcome recorded since
            # the scan is not skipped.
            last_id = "0-0"
        while True:
            for entry_id, fields in entries_after(
                self.redis, self.keys.results, last_id, count=STREAM_PAGE, block_ms=1000
            ):
                last_id = entry_id
                outcome = _matching(fields, request_id, batch_id)
                if outcome is not None:
                    yield outcome


def _matching(
    fields: dict[str, str], request_id: str | None, batch_id: str | None
) -> Outcome | None:
    if request_id is not None and fields.get("request_id") != request_id:
        return None
    outcome = Outcome.model_validate_json(fields["outcome"])
    if batch_id is not None and outcome.batch_id != batch_id:
        return None
    return outcome
