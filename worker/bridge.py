"""The intake bridge: plain-JSON requests on the stream `{prefix}intake` become Celery tasks.

For producers that speak no Celery: `XADD grants:intake * request '{"grant": …}'`. Each worker
runs one bridge thread in the consumer group `{prefix}bridge`; an entry is acknowledged and
deleted only after its task is on the queue, so a crash between the two re-enqueues it (the
task id is the request id, and a recorded outcome makes the duplicate a no-op). Entries left
pending by a dead worker are claimed by the others after `CLAIM_IDLE_MS`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from typing import Any

import redis
from celery import Celery, bootsteps

from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.gate import TASK_NAME
from grant_worker.tasks.messages.models import is_request_id
from grant_worker.tasks.outcomes.streams import claim_stale, group_entries
from grant_worker.worker.logs import log_broker_fault

log = logging.getLogger(__name__)

BLOCK_MS = 1000
BATCH = 100
CLAIM_IDLE_MS = 60_000


def task_id_for(entry_id: str, request: Any) -> str:
    """The request's own id where it has a valid one, else one derived from the entry id."""
    if isinstance(request, dict):
        given = request.get("request_id")
        if is_request_id(given):
            return given
    return f"intake-{entry_id}"


def decode_entry(fields: dict[str, str]) -> Any:
    """The `request` field as JSON where it parses; otherwise the raw text (the task rejects it).

    Raises `RequestInvalid` when the entry has no `request` field at all.
    """
    raw = fields.get("request")
    if raw is None:
        raise RequestInvalid([f"intake entry: no field `request` (fields: {sorted(fields)})"])
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


class IntakeBridge:
    """Moves entries from the intake stream onto the Celery queue."""

    def __init__(
        self,
        app: Celery,
        client: redis.Redis,
        keys: Keys,
        consumer: str,
        *,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        self._app = app
        self._claim_idle_ms = claim_idle_ms
        self._client = client
        self._keys = keys
        self._consumer = consumer
        self._stop = threading.Event()

    def ensure_group(self) -> None:
        try:
            self._client.xgroup_create(
                self._keys.intake, self._keys.intake_group, "0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self) -> None:
        """Bridge until `stop()`; survives Redis restarts by retrying after a pause."""
        while not self._stop.is_set():
            try:
                self.ensure_group()
                self.pump_once(block_ms=BLOCK_MS)
            except redis.RedisError as exc:
                log_broker_fault("intake bridge: Redis failed; retrying in 1 s", exc)
                self._stop.wait(1.0)

    def pump_once(self, *, block_ms: int | None = None) -> int:
        """Move one batch (claimed stale entries first); returns how many were enqueued."""
        entries = claim_stale(
            self._client,
            self._keys.intake,
            self._keys.intake_group,
            self._consumer,
            min_idle_ms=self._claim_idle_ms,
            count=BATCH,
        )
        if not entries:
            entries = group_entries(
                self._client,
                self._keys.intake,
                self._keys.intake_group,
                self._consumer,
                count=BATCH,
                block_ms=block_ms,
            )
        for entry_id, fields in entries:
            try:
                request = decode_entry(fields)
            except RequestInvalid as exc:
                self._app.grants_handler().reject(
                    fields, fallback_id=f"intake-{entry_id}", error=exc
                )
            else:
                self._app.send_task(
                    TASK_NAME,
                    kwargs={"request": request},
                    task_id=task_id_for(entry_id, request),
                )
            pipe = self._client.pipeline()
            pipe.xack(self._keys.intake, self._keys.intake_group, entry_id)
            pipe.xdel(self._keys.intake, entry_id)
            pipe.execute()
        return len(entries)

    def stop(self) -> None:
        self._stop.set()


class IntakeBridgeStep(bootsteps.StartStopStep):
    """Runs an `IntakeBridge` thread for the life of a Celery worker."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._bridge: IntakeBridge | None = None
        self._thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        settings = worker.app.grants_settings
        consumer = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._bridge = IntakeBridge(
            worker.app, make_redis(settings), Keys(settings.grants_key_prefix), consumer
        )
        self._thread = threading.Thread(target=self._bridge.run, name="intake-bridge", daemon=True)
        self._thread.start()

    def stop(self, worker: Any) -> None:
        if self._bridge is not None:
            self._bridge.stop()
        if self._thread is not None:
            self._thread.join(timeout=BLOCK_MS / 1000 + 2)
