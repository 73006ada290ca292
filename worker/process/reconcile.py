"""After Redis changes under a worker (a Sentinel failover, a restarted Redis): reconcile at once.

A failover splits what a worker holds from what Redis says it holds. The consumer reconnects,
and Celery drops the requests it had prefetched (their delivery tags belonged to the old
channel); kombu's restore of them on close goes to the demoted primary and fails; rejects and
acks of requests that ran meanwhile go through the dead channel and fail too. On the new master
those messages are still unacknowledged under this worker's tags, held by no one: they
would wait for the visibility timeout (~90 s at defaults). Conversely, the new master may lack
the record of a message this worker is working on (the write reached the old primary only):
were the worker to die, nothing would bring that message back.

So the recovery thread watches which Redis it talks to (the master's run id; a server that is no
longer a master makes the pool ask Sentinel again). When it changes, and on every sweep for one
visibility timeout after that:

- every tag of this worker (`owned_tags`) that it does not hold in memory (Celery's requests)
  goes back to the queue through kombu's own `restore_by_tag`, except tags delivered in the
  last `RECENT_S` (a message being delivered right now is in Redis before it is in memory);
- every message it holds in memory that the new master has no unacknowledged record of is
  recorded again (kombu's hash and index), once, right after the change.

Both may hand a request to a second delivery while the first still runs; the request lock and
the outcome record make that second delivery wait and find the first one's outcome, and a
possibly-sent create is resolved by a lookup: nothing is created twice. This worker's taking
list needs no pass here: a reconnected channel puts it back before it takes anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from celery.worker import state
from kombu.utils.json import dumps

from grant_worker.tasks import metrics
from grant_worker.tasks.fleet import Identity
from grant_worker.tasks.keys import Keys
from grant_worker.worker.process.broker.qos import owned_tags

log = logging.getLogger(__name__)

# A tag delivered this recently may not be in Celery's memory yet: left for the next sweep.
RECENT_S = 5.0


@dataclass(frozen=True)
class Held:
    """A message this worker holds in memory: its tag and kombu's unacknowledged record."""

    tag: str
    record: str


def held_in_memory() -> list[Held]:
    """The messages Celery holds in this process: reserved, scheduled (eta) and running."""
    found: dict[str, Held] = {}
    requests: Iterable[Any] = [
        *list(state.requests.values()),
        *list(state.reserved_requests),
        *list(state.active_requests),
        *list(state.scheduled_requests),
    ]
    for request in requests:
        message = getattr(request, "message", None)
        tag = getattr(message, "delivery_tag", None)
        if message is None or tag is None:
            continue
        info = message.delivery_info or {}
        raw = getattr(message, "_raw", None)
        record = dumps([raw, info.get("exchange", ""), info.get("routing_key", "")])
        found[str(tag)] = Held(str(tag), record)
    return list(found.values())


def master_run_id(client: redis.Redis) -> str | None:
    """The run id of the master `client` talks to; None when it talks to a replica (a demoted
    primary answers reads): its connections are dropped, so the next ones find the master."""
    role = client.execute_command("ROLE")
    kind = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
    if kind != "master":
        client.connection_pool.disconnect()
        return None
    return str(client.info("server")["run_id"])


class Reconciler:
    """Notices a changed master and puts this worker's held messages right on it."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        me: Identity,
        restore_by_tag: Callable[[str], None],
        window_s: float,
        in_memory: Callable[[], list[Held]] = held_in_memory,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._keys = keys
        self._me = me
        self._restore_by_tag = restore_by_tag
        self._window_s = window_s
        self._in_memory = in_memory
        self._clock = clock
        self._master: str | None = None
        self._until = 0.0

    def prime(self) -> None:
        """Note the master this worker starts on, before it takes any message: a failover
        before the first sweep is then a change too, not the first master seen. Redis away at
        start leaves it to the first sweep."""
        try:
            self._master = master_run_id(self._client)
        except redis.RedisError as exc:
            log.info("master not known at start (%s); the first sweep notes it", exc)

    def check(self) -> int:
        """Look at the master; reconcile after a change. Returns messages put back."""
        run_id = master_run_id(self._client)
        if run_id is None:
            return 0
        changed = self._master is not None and run_id != self._master
        self._master = run_id
        if changed:
            self._until = self._clock() + self._window_s
            log.warning(
                "Redis's master changed (run id %s…); reconciling what this worker holds",
                run_id[:8],
            )
            self.record_again()
        if self._clock() >= self._until:
            return 0
        return self.put_back()

    def put_back(self) -> int:
        """Restore the tags of this worker that it does not hold in memory."""
        tags = owned_tags(self._client, self._keys, self._me)
        if not tags:
            return 0
        mine = {held.tag for held in self._in_memory()}
        strays = [tag for tag in tags if tag not in mine]
        if not strays:
            return 0
        delivered = self._client.zmscore(self._keys.unacked_index, strays)
        recent_after = self._clock() - RECENT_S
        restored = 0
        for tag, at in zip(strays, delivered, strict=True):
            if at is not None and float(at) > recent_after:
                continue
            self._restore_by_tag(tag)
            restored += 1
        if restored:
            metrics.RECOVERED_MESSAGES.inc(restored)
            log.warning(
                "%d message(s) Redis had this worker hold, unknown to it since the master "
                "changed, put back on the queue",
                restored,
            )
        return restored

    def record_again(self) -> int:
        """Record as unacknowledged, on this master, what this worker holds and it lacks."""
        held = self._in_memory()
        if not held:
            return 0
        present = self._client.hmget(self._keys.unacked, [h.tag for h in held])
        missing = [h for h, record in zip(held, present, strict=True) if record is None]
        if not missing:
            return 0
        now = self._clock()
        pipe = self._client.pipeline(transaction=True)
        for h in missing:
            pipe.hsetnx(self._keys.unacked, h.tag, h.record)
            pipe.zadd(self._keys.unacked_index, {h.tag: now}, nx=True)
        pipe.execute()
        log.warning(
            "%d message(s) this worker holds were unknown to the new master; recorded again",
            len(missing),
        )
        return len(missing)
