"""Crash recovery in seconds: surviving workers take back a dead worker's messages.

kombu's Redis transport keeps every delivered, unacknowledged message in one hash
(`Keys.unacked`), indexed by delivery time, and puts a message back only once the visibility
timeout has passed (90 s with the default budget): far too late after a crash. What it lacks is
who holds which message. Here:

- each worker process has an identity, `hostname/boot` (`boot` new at every start, so a
  restarted worker with the same name is told apart from its previous life);
- the worker takes each message off the queue with one atomic move into a list of its own,
  `Keys.taking(identity)` (`worker.process.broker.transport`), not with kombu's BRPOP: killed
  between the pop and kombu's unacknowledged record, a BRPOP'd message would exist nowhere;
- `TrackingQoS` adds each delivery tag to the set `Keys.held(identity)` when the worker takes the
  message, in the same transaction as kombu's own unacknowledged record and the removal of the
  message from the taking list, and removes the tag when kombu acks, rejects or restores it;
- the heartbeat (`Keys.heartbeat(identity)`, written by the watchdog every
  GRANTS_HEARTBEAT_INTERVAL_S, expiring after GRANTS_HEARTBEAT_TTL_S) is the identity's own,
  and each beat registers it in `Keys.workers`. Keyed by identity, not by host name: two live
  workers started under the same name (two `grants worker` on one machine without
  `--hostname`) would otherwise overwrite each other's beat, each take the other for dead, and
  put its messages back while they run, over and over;
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

import functools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from grant_worker.tasks import metrics
from grant_worker.tasks.keys import Keys

log = logging.getLogger(__name__)

# A survivor restoring a dead worker's messages holds the identity this long at most.
RECOVERY_LOCK_S = 30


@dataclass(frozen=True)
class Identity:
    """One life of one worker process."""

    hostname: str
    boot: str

    @classmethod
    def new(cls, hostname: str) -> Identity:
        return cls(hostname, uuid.uuid4().hex[:12])

    @classmethod
    def parse(cls, text: str) -> Identity:
        hostname, _, boot = text.rpartition("/")
        return cls(hostname, boot)

    def __str__(self) -> str:
        return f"{self.hostname}/{self.boot}"


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


# Every item of a taking list back at the head of the queue (BRPOP and BRPOPLPUSH take from the
# right: RPUSH makes it next in line), in one atomic step.
_RETURN_TAKEN = """
local moved = 0
while true do
  local item = redis.call('RPOP', KEYS[1])
  if not item then return moved end
  redis.call('RPUSH', KEYS[2], item)
  moved = moved + 1
end
"""


def return_taken(client: Any, taking: str, queue: str) -> int:
    """Move every message of the taking list `taking` back onto the queue list `queue`."""
    return int(client.eval(_RETURN_TAKEN, 2, taking, queue))


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


def beat(
    client: redis.Redis, keys: Keys, identity: Identity, facts: dict[str, Any], ttl_s: float
) -> None:
    """Write the heartbeat of `identity` (with `facts`) and keep it in the register."""
    payload = {
        **facts,
        "identity": str(identity),
        "boot": identity.boot,
        # Where the process runs, so that its next life in the same process space can tell at
        # once that it is gone (`is_alive`).
        "space": process_space(),
        "pid": os.getpid(),
    }
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.heartbeat(str(identity)), json.dumps(payload), px=int(ttl_s * 1000))
    pipe.sadd(keys.workers, str(identity))
    pipe.execute()


def forget(client: redis.Redis, keys: Keys, identity: Identity) -> None:
    """A clean exit: nothing held any more, no heartbeat to wait for."""
    pipe = client.pipeline(transaction=True)
    pipe.srem(keys.workers, str(identity))
    pipe.delete(keys.held(str(identity)))
    pipe.delete(keys.heartbeat(str(identity)))
    pipe.execute()


def is_alive(client: redis.Redis, keys: Keys, identity: Identity) -> bool:
    """Its heartbeat has not lapsed, and it is not a finished process of our process space."""
    raw = client.get(keys.heartbeat(str(identity)))
    if not raw:
        return False
    try:
        beat = json.loads(raw)
        space, pid = beat.get("space"), beat.get("pid")
    except (ValueError, AttributeError):
        return True  # a beat we cannot read is still a beat: wait for it to lapse
    here = process_space()
    if here is None or space != here or not isinstance(pid, int) or pid == os.getpid():
        return True
    return _process_exists(pid)


@functools.cache
def process_space() -> str | None:
    """Names the set of processes `os.kill(pid, 0)` can see: this kernel's boot and this PID
    namespace. Not the host name: two containers may share one, each with its own process
    numbers, and a restarted container has a new namespace. None where Linux's /proc is not
    there (the heartbeat's lapse alone decides then)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _process_exists(pid: int) -> bool:
    """Whether a process `pid` runs here. When unsure (a reused pid, no permission), yes: the
    heartbeat's lapse then decides, a few seconds later."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


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
        for member in self._client.smembers(self._keys.workers):
            identity = Identity.parse(_text(member))
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
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(held)
            pipe.srem(self._keys.workers, str(identity))
            pipe.execute()
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
