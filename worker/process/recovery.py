"""Crash recovery in seconds: surviving workers take back a dead worker's messages.

kombu's Redis transport keeps every delivered, unacknowledged message in one hash
(`Keys.unacked`), indexed by delivery time, and puts a message back only once the visibility
timeout has passed (90 s with the default budget): far too late after a crash. What it lacks is
who holds which message. Here:

- each worker process has an identity, `hostname/boot` (`tasks.fleet.Identity`);
- the worker takes each message off the queue with one atomic move into a list of its own,
  `Keys.taking(identity)` (`worker.process.broker.transport`), not with kombu's BRPOP: killed
  between the pop and kombu's unacknowledged record, a BRPOP'd message would exist nowhere;
- every delivery tag the worker gives starts with its mark (`worker.process.broker.qos`), and
  `TrackingQoS` writes kombu's own unacknowledged record under it (index and hash) in the same
  atomic step that removes the message from the taking list: the tags of kombu's index with a
  worker's mark are what it holds (`owned_tags`);
- the watchdog's heartbeat registers the identity (`tasks.fleet`, which owns the register
  and the heartbeats);
- every worker scans the register as often as it beats: an identity whose heartbeat has lapsed
  is dead, and so is a previous life on this very machine whose process is gone (a worker
  restarted under its old name: no need to wait for the heartbeat to lapse). One survivor
  (under `Keys.recovering(identity)`) restores its tags through kombu's own
  `restore_by_tag`, the path the visibility timeout takes, moves what is left in its taking
  list back onto the queue, then forgets the identity.

A message restored while its first delivery still runs (a worker that only seemed dead) is
harmless: the request lock and the outcome record make the second delivery wait and find the
first one's outcome. The visibility timeout stays as the backstop for anything this misses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import redis

from grant_worker.tasks import metrics
from grant_worker.tasks.fleet import Identity, is_alive, registered, release
from grant_worker.tasks.keys import Keys
from grant_worker.worker.process.broker.qos import owned_tags, return_taken
from grant_worker.worker.process.reconcile import Reconciler

log = logging.getLogger(__name__)

# A survivor restoring a dead worker's messages holds the identity this long at most.
RECOVERY_LOCK_S = 30


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
            tags = owned_tags(self._client, self._keys, identity)
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


class RecoveryLoop:
    """Runs `Recovery.sweep` every `interval_s` in a thread of its own, after the
    reconciler's look at the master (`worker.process.reconcile`), when there is one."""

    def __init__(
        self, recovery: Recovery, *, interval_s: float, reconciler: Reconciler | None = None
    ) -> None:
        self._recovery = recovery
        self._interval_s = interval_s
        self._reconciler = reconciler
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self._interval_s):
            steps = [self._recovery.sweep]
            if self._reconciler is not None:
                steps.insert(0, self._reconciler.check)
            for step in steps:
                try:
                    step()
                except (redis.RedisError, OSError) as exc:
                    log.debug("recovery: %s", type(exc).__name__)
                except Exception:
                    log.exception("recovery failed")

    def stop(self) -> None:
        self._stop.set()


def kombu_restore(app: Any) -> Callable[[str], None]:
    """kombu's own `restore_by_tag`, on a connection of the recovery thread's own."""
    state: dict[str, Any] = {}
    guard = threading.Lock()

    def restore(tag: str) -> None:
        with guard:
            if "channel" not in state:
                connection = app.connection_for_write()
                state["connection"] = connection
                state["channel"] = connection.default_channel
            try:
                state["channel"].qos.restore_by_tag(tag)
            except Exception:
                # Redis failed or the master moved: the next restore starts on a connection of
                # its own, which finds the master afresh.
                connection = state.pop("connection")
                state.pop("channel")
                with suppress(Exception):
                    connection.release()
                raise

    return restore
