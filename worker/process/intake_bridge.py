"""The intake bridge: plain-JSON requests on the stream `{prefix}intake` become Celery tasks.

For producers that speak no Celery: `XADD grants:intake * request '{"grant": …}'`. Each worker
runs one bridge thread in the consumer group `{prefix}bridge`; an entry is acknowledged and
deleted only after its task is on the queue, so a crash between the two re-enqueues it (the
task id is the request id, and a recorded outcome makes the duplicate a no-op). Entries left
pending by a dead worker are claimed by the others after `CLAIM_IDLE_MS`; entries a bridge left
pending itself (Redis went away in the middle of a batch) it takes up again first thing after
its restart, instead of waiting `CLAIM_IDLE_MS` for itself.

Hostile entries cannot take the fleet down: each `request` is decoded within the contract's
size and depth limits (`tasks.messages.decoding`), an entry that still fails is rejected with
a dead letter, and an entry claimed more than `max_claims` times (it killed or stalled every
bridge that took it) is dead-lettered instead of being handed on. The loop itself is
supervised: any exception is logged, followed by a growing pause and a restart; the bridge's
liveness (`IntakeBridge.alive`) is part of the watchdog's heartbeat and of the metrics.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from typing import Any

import redis
from celery import Celery

from grant_worker.tasks import metrics
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.events import log_broker_fault
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.decoding import decode_json
from grant_worker.tasks.messages.inspection import TASK_NAME
from grant_worker.tasks.messages.models import is_request_id
from grant_worker.tasks.outcomes.streams import claim_stale, group_entries

log = logging.getLogger(__name__)

BLOCK_MS = 1000
BATCH = 100
CLAIM_IDLE_MS = 60_000
MAX_CLAIMS = 5
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0
PREVIEW_CHARS = 1024
# A bridge whose loop has not come round for this long is dead: one blocking read, the longest
# pause between restarts, and a margin.
LIVENESS_S = BLOCK_MS / 1000 + RESTART_MAX_S + 5
# How long a stopping worker waits for the bridge's thread: one blocking read, and a margin.
STOP_WAIT_S = BLOCK_MS / 1000 + 2


def task_id_for(entry_id: str, request: Any) -> str:
    """The request's own id where it has a valid one, else one derived from the entry id."""
    if isinstance(request, dict):
        given = request.get("request_id")
        if is_request_id(given):
            return given
    return f"intake-{entry_id}"


def decode_entry(fields: dict[str, str]) -> Any:
    """The `request` field decoded within the contract's size and depth limits.

    Raises `RequestInvalid` when the entry has no `request` field, or one that is too big,
    too deep or not JSON.
    """
    raw = fields.get("request")
    if raw is None:
        names = sorted(str(name)[:64] for name in list(fields)[:20])
        raise RequestInvalid([f"intake entry: no field `request` (fields: {names})"])
    return decode_json(raw, what="intake entry `request`")


def preview(fields: dict[str, str]) -> dict[str, str]:
    """What a dead letter keeps of an entry: each field cut to a readable length."""
    return {str(k)[:64]: str(v)[:PREVIEW_CHARS] for k, v in list(fields.items())[:20]}


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
        max_claims: int = MAX_CLAIMS,
    ) -> None:
        self._app = app
        self._claim_idle_ms = claim_idle_ms
        self._max_claims = max_claims
        self._last_loop = time.monotonic()
        self._running = False
        self._client = client
        self._keys = keys
        self._consumer = consumer
        self._stop = threading.Event()
        # Until its own pending entries are read back: at start and after every failure.
        self._own_pending_done = False

    def ensure_group(self) -> None:
        try:
            self._client.xgroup_create(
                self._keys.intake, self._keys.intake_group, "0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def start_in_thread(self) -> threading.Thread:
        """Run in a daemon thread of its own. Alive from this moment: the watchdog may look
        before the thread is first scheduled, and a bridge about to start is not dead."""
        self._running = True
        self._last_loop = time.monotonic()
        thread = threading.Thread(target=self.run, name="intake-bridge", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        """Bridge until `stop()`. Supervised: no exception ends it (a Redis restart, kombu's
        `OperationalError`, a bug); each is logged, then a pause that grows while they repeat."""
        failures = 0
        self._running = True
        metrics.INTAKE_BRIDGE_ALIVE.set(1)
        try:
            while not self._stop.is_set():
                self._last_loop = time.monotonic()
                try:
                    self.ensure_group()
                    self.pump_once(block_ms=BLOCK_MS)
                    failures = 0
                except Exception as exc:
                    self._own_pending_done = False
                    failures += 1
                    pause_s = min(RESTART_FIRST_S * 2 ** (failures - 1), RESTART_MAX_S)
                    metrics.INTAKE_BRIDGE_RESTARTS.inc()
                    if isinstance(exc, redis.RedisError | OSError) or _is_kombu_error(exc):
                        log_broker_fault(
                            f"intake bridge: Redis failed; restarting in {pause_s:.1f} s", exc
                        )
                    else:
                        log.exception("intake bridge failed; restarting in %.1f s", pause_s)
                    self._stop.wait(pause_s)
        finally:
            self._running = False
            metrics.INTAKE_BRIDGE_ALIVE.set(0)

    def alive(self, *, now: float | None = None) -> bool:
        """Whether the loop runs and came round recently (a pause between restarts counts)."""
        now = time.monotonic() if now is None else now
        return self._running and now - self._last_loop < LIVENESS_S

    def pump_once(self, *, block_ms: int | None = None) -> int:
        """Move one batch (its own pending entries first, then stale entries of others, then
        new ones); returns how many were handled."""
        entries: list[tuple[str, Any]] = []
        if not self._own_pending_done:
            entries = self._read_group(pending=True)
            self._own_pending_done = not entries
            # An entry trimmed away while pending comes back without fields: nothing to move.
            gone = [entry_id for entry_id, fields in entries if not fields]
            if gone:
                self._client.xack(self._keys.intake, self._keys.intake_group, *gone)
                entries = [(entry_id, fields) for entry_id, fields in entries if fields]
        if not entries:
            entries = claim_stale(
                self._client,
                self._keys.intake,
                self._keys.intake_group,
                self._consumer,
                min_idle_ms=self._claim_idle_ms,
                count=BATCH,
            )
        claims = self._claim_counts([entry_id for entry_id, _ in entries]) if entries else {}
        if not entries:
            entries = self._read_group(block_ms=block_ms)
        for entry_id, fields in entries:
            self._move(entry_id, fields or {}, claims.get(entry_id, 1))
        return len(entries)

    def _read_group(self, *, block_ms: int | None = None, pending: bool = False) -> list[Any]:
        return group_entries(
            self._client,
            self._keys.intake,
            self._keys.intake_group,
            self._consumer,
            count=BATCH,
            block_ms=block_ms,
            pending=pending,
        )

    def _move(self, entry_id: str, fields: dict[str, str], deliveries: int) -> None:
        fallback_id = f"intake-{entry_id}"
        receipt = self._app.grants_receipt()
        if deliveries > self._max_claims:
            reason = (
                f"intake entry: claimed {deliveries} times without being enqueued "
                f"(at most {self._max_claims}); dead-lettered"
            )
            log.error("%s: %s", fallback_id, reason)
            receipt.reject(preview(fields), fallback_id=fallback_id, error=RequestInvalid([reason]))
        else:
            try:
                request = decode_entry(fields)
            except RequestInvalid as exc:
                receipt.reject(preview(fields), fallback_id=fallback_id, error=exc)
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

    def _claim_counts(self, entry_ids: list[str]) -> dict[str, int]:
        """How many times each claimed entry has been handed to a bridge (XPENDING)."""
        pipe = self._client.pipeline()
        for entry_id in entry_ids:
            pipe.xpending_range(
                self._keys.intake, self._keys.intake_group, min=entry_id, max=entry_id, count=1
            )
        counts: dict[str, int] = {}
        for answer in pipe.execute():
            for pending in answer:
                counts[str(pending["message_id"])] = int(pending["times_delivered"])
        return counts

    def stop(self) -> None:
        self._stop.set()


def _is_kombu_error(exc: BaseException) -> bool:
    import kombu.exceptions

    return isinstance(exc, kombu.exceptions.KombuError)


def make_intake_bridge(app: Celery) -> IntakeBridge:
    """The bridge of one worker process, under a consumer name of its own in the group."""
    settings = app.grants_settings
    return IntakeBridge(
        app,
        make_redis(settings),
        Keys(settings.grants_key_prefix),
        f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
        max_claims=settings.grants_max_deliveries,
    )
