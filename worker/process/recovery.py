"""Crash recovery in seconds: surviving workers take back a dead worker's messages.

kombu's Redis transport keeps every delivered, unacknowledged message in one hash
(`Keys.unacked`), indexed by delivery time, and puts a message back only once the visibility
timeout has passed (90 s with the default budget): far too late after a crash. What it lacks is
who holds which message. Here:

- each worker process has an identity, `hostname/boot` (`tasks.fleet.Identity`);
- the worker takes each message off the queue with one atomic move into a list of its own,
  `Keys.taking(identity)` (`worker.process.broker.transport`), not with kombu's BRPOP: killed
  between the pop and kombu's unacknowledged record, a BRPOP'd message would exist nowhere;
- `TrackingQoS` adds each delivery tag to the set `Keys.held(identity)` when the worker takes the
  message, in the same transaction as kombu's own unacknowledged record and the removal of the
  message from the taking list, and removes the tag when kombu acks, rejects or restores it;
- the watchdog's heartbeat registers the identity (`tasks.fleet`, which owns the register
  and the heartbeats);
- every worker scans the register as often as it beats: an identity whose heartbeat has lapsed
  is dead, and so is a previous life on this very machine whose process is gone (a worker
  restarted under its old name: no need to wait for the heartbeat to lapse). One survivor
  (under `Keys.recovering(identity)`) restores its held tags through kombu's own
  `restore_by_tag`, the path the visibility timeout takes, moves what is left in its taking
  list back onto the queue, then forgets the identity.

A message restored while its first delivery still runs (a worker that only seemed dead) is
harmless: the request lock and the outcome record make the second delivery wait and find the
first one's outcome. The visibility timeout stays as the backstop for anything this misses.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import bootsteps
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from grant_worker.tasks import metrics
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.fleet import Identity, is_alive, registered, release
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.scripts import register

log = logging.getLogger(__name__)

# A survivor restoring a dead worker's messages holds the identity this long at most.
RECOVERY_LOCK_S = 30


# The identity and key names of this process once it works as a worker; None in producers
# and CLI processes, whose channels hold nothing.
_tracking: tuple[Identity, Keys] | None = None


def track_as(identity: Identity, keys: Keys) -> None:
    """From now on, record the delivery tags this process holds under `identity`."""
    global _tracking
    _tracking = (identity, keys)


def tracked_identity() -> Identity | None:
    return _tracking[0] if _tracking else None


def _held_key() -> str | None:
    if _tracking is None:
        return None
    identity, keys = _tracking
    return keys.held(str(identity))


def taking_key() -> str | None:
    """This worker's list of messages taken off the queue and not yet recorded; None outside
    a worker (producers and CLI processes take nothing)."""
    if _tracking is None:
        return None
    identity, keys = _tracking
    return keys.taking(str(identity))


def return_taken(client: Any, taking: str, queue: str) -> int:
    """Move every message of the taking list `taking` back onto the head of the queue list
    `queue`, in one atomic step (`lua/return_taken_to_queue.lua`)."""
    return int(register(client, __package__, "return_taken_to_queue.lua")(keys=[taking, queue]))


class TrackingQoS(kombu_redis.QoS):
    """kombu's QoS, also keeping the set of delivery tags this worker holds."""

    def append(self, message: Any, delivery_tag: Any) -> None:
        held = _held_key()
        if held is None:
            super().append(message, delivery_tag)
            return
        # kombu's own append, with the tag added to the held set in the same round trip: a
        # second one would widen the window in which a killed worker loses a message it took
        # off the queue but had not yet recorded.
        delivery = message.delivery_info
        exchange, routing_key = delivery["exchange"], delivery["routing_key"]
        # The item as it was moved into this worker's taking list
        # (`worker.process.broker.transport`): it leaves the list in the same transaction that
        # records it as unacknowledged.
        taken = getattr(self.channel, "taken_item", None)
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}).hset(
                self.unacked_key, delivery_tag, dumps([message._raw, exchange, routing_key])
            ).sadd(held, delivery_tag)
            if taken is not None:
                pipe.lrem(taken[0], 1, taken[1])
            pipe.execute()
            self.channel.taken_item = None  # recorded: out of the taking list
            virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        pipe = super()._remove_from_indices(delivery_tag, pipe)
        held = _held_key()
        return pipe.srem(held, delivery_tag) if held is not None else pipe


class Recovery:
    """Finds lapsed workers and puts their messages back, through kombu's restore path."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        me: Identity,
        restore_by_tag: Callable[[str], None],
        queue: str | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._me = me
        self._restore_by_tag = restore_by_tag
        # The queue's list, for messages a dead worker had taken but not yet recorded.
        self._queue = queue

    @property
    def client(self) -> redis.Redis:
        return self._client

    @property
    def keys(self) -> Keys:
        return self._keys

    def sweep(self) -> int:
        """Recover every registered worker whose heartbeat lapsed; returns messages restored."""
        restored = 0
        for identity in registered(self._client, self._keys):
            if identity == self._me or is_alive(self._client, self._keys, identity):
                continue
            restored += self.recover(identity)
        return restored

    def recover(self, identity: Identity) -> int:
        """Restore what `identity` held, unless another survivor is doing it; returns count."""
        lock = self._keys.recovering(str(identity))
        if not self._client.set(lock, str(self._me), nx=True, ex=RECOVERY_LOCK_S):
            return 0
        try:
            # Checked again under the lock: it may have beaten since the scan.
            if identity != self._me and is_alive(self._client, self._keys, identity):
                return 0
            held = self._keys.held(str(identity))
            tags = [_text(tag) for tag in self._client.smembers(held)]
            for tag in tags:
                self._restore_by_tag(tag)
            taken = 0
            if self._queue is not None:
                taken = return_taken(self._client, self._keys.taking(str(identity)), self._queue)
            release(self._client, self._keys, identity)
        finally:
            self._client.delete(lock)
        if (tags or taken) and identity != self._me:
            metrics.RECOVERED_MESSAGES.inc(len(tags) + taken)
            log.warning(
                "worker %s stopped beating; %d unacknowledged messages put back on the queue"
                " (%d of them just taken, not yet recorded)",
                identity,
                len(tags) + taken,
                taken,
            )
        return len(tags) + taken


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RecoveryLoop:
    """Runs `Recovery.sweep` every `interval_s` in a thread of its own."""

    def __init__(self, recovery: Recovery, *, interval_s: float) -> None:
        self._recovery = recovery
        self._interval_s = interval_s
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._recovery.sweep()
            except (redis.RedisError, OSError) as exc:
                log.debug("recovery sweep: %s", type(exc).__name__)
            except Exception:
                log.exception("recovery sweep failed")

    def stop(self) -> None:
        self._stop.set()


class RecoveryStep(bootsteps.StartStopStep):
    """Gives the worker its identity, then sweeps for lapsed workers for its whole life."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        settings = worker.app.grants_settings
        self._keys = Keys(settings.grants_key_prefix)
        # Set before the consumer takes its first message, so every tag it holds is tracked.
        self.identity = Identity.new(getattr(worker, "hostname", None) or socket.gethostname())
        track_as(self.identity, self._keys)
        worker.grants_identity = self.identity
        self._loop: RecoveryLoop | None = None
        from grant_worker.worker.process import shutdown

        shutdown.install(worker, settings.grants_shutdown_grace_s)

    def start(self, worker: Any) -> None:
        settings = worker.app.grants_settings
        client = make_redis(settings)
        recovery = Recovery(
            client,
            self._keys,
            me=self.identity,
            restore_by_tag=_kombu_restore(worker.app),
            queue=settings.grants_queue,
        )
        worker.grants_recovery = recovery
        self._loop = RecoveryLoop(recovery, interval_s=settings.grants_heartbeat_interval_s)
        threading.Thread(target=self._loop.run, name="recovery", daemon=True).start()

    def stop(self, worker: Any) -> None:
        if self._loop is not None:
            self._loop.stop()


def _kombu_restore(app: Any) -> Callable[[str], None]:
    """kombu's own `restore_by_tag`, on a connection of the recovery thread's own."""
    state: dict[str, Any] = {}
    guard = threading.Lock()

    def restore(tag: str) -> None:
        with guard:
            if "channel" not in state:
                connection = app.connection_for_write()
                state["connection"] = connection
                state["channel"] = connection.default_channel
            state["channel"].qos.restore_by_tag(tag)

    return restore
