"""kombu's QoS as this project runs it: every delivery tag a worker gives starts with its
owner's mark, and every message it takes off the queue waits in its taking list until it is
recorded.

This process's identity is set once it works as a worker (`track_as`, by the recovery step);
producers and CLI processes have none, and their channels hold nothing. Survivors find a dead
worker's unacknowledged messages by the mark of their tags in kombu's index (`owned_tags`), and
its taking list, to put them back (`worker.process.recovery`). The mark in the tag is the
record of who holds what: a set of tags beside kombu's index cost a write at every take and
another at every ack, for what the index already holds.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps
from redis.commands.core import Script

from grant_worker.tasks.fleet import Identity
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import is_request_id
from grant_worker.tasks.scripts import register

# The identity and key names of this process once it works as a worker; None in producers
# and CLI processes, whose channels hold nothing.
_tracking: tuple[Identity, Keys] | None = None
# How long a delivery count lives (GRANTS_RECORD_TTL_S); None: deliveries are counted later,
# by the consumer (`worker.process.consumer`).
_deliveries_ttl_s: int | None = None
# `lua/record_taken.lua`, registered once; run on whichever client the channel hands out.
_record_taken_script: Script | None = None


def track_as(identity: Identity, keys: Keys, *, deliveries_ttl_s: int | None = None) -> None:
    """From now on, record the delivery tags this process holds under `identity`; with
    `deliveries_ttl_s`, also count each delivery (`delivery_count`) as it is recorded."""
    global _tracking, _deliveries_ttl_s
    _tracking = (identity, keys)
    _deliveries_ttl_s = deliveries_ttl_s


def delivery_count(message: Any) -> int | None:
    """The deliveries of `message`'s task id so far, this one included, as counted when it was
    taken; None when it was not counted then (the consumer counts it itself)."""
    return getattr(message, "grants_deliveries", None)


def _countable_task_id(message: Any) -> str | None:
    # Only an id the consumer would count under: one it refuses is never counted.
    task_id = (getattr(message, "headers", None) or {}).get("id")
    return task_id if is_request_id(task_id) else None


def tracked_identity() -> Identity | None:
    return _tracking[0] if _tracking else None


def owner_mark(identity: Identity | str) -> str:
    """What every delivery tag given by the worker `identity` starts with: a digest, so that the
    mark is short, fixed and free of the characters a SCAN pattern reads as wildcards."""
    return hashlib.sha256(str(identity).encode()).hexdigest()[:16] + "."


def new_delivery_tag() -> str:
    """A delivery tag of its own for a message this process receives, marked with its owner
    when the process works as a worker."""
    tag = uuid.uuid4().hex
    return owner_mark(_tracking[0]) + tag if _tracking is not None else tag


def owned_tags(client: redis.Redis, keys: Keys, identity: Identity) -> list[str]:
    """The tags of the messages `identity` holds unacknowledged: those of kombu's index with its
    mark (every record is indexed: the index entry is written with it and removed last), and
    those of the held set an earlier release kept instead (a worker of that release that died
    during an upgrade)."""
    found = {
        _text(tag)
        for tag, _at in client.zscan_iter(
            keys.unacked_index, match=f"{owner_mark(identity)}*", count=1000
        )
    }
    found.update(_text(tag) for tag in client.smembers(keys.held(str(identity))))
    return sorted(found)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def taking_key() -> str | None:
    """This worker's list of messages taken off the queue and not yet recorded; None outside
    a worker (producers and CLI processes take nothing)."""
    if _tracking is None:
        return None
    identity, keys = _tracking
    return keys.taking(str(identity))


def _record_taken(client: Any) -> Script:
    global _record_taken_script
    if _record_taken_script is None:
        _record_taken_script = register(client, __package__, "record_taken.lua")
    return _record_taken_script


def return_taken(client: Any, taking: str, queue: str) -> int:
    """Move every message of the taking list `taking` back onto the head of the queue list
    `queue`, in one atomic step (`lua/return_taken_to_queue.lua`)."""
    return int(register(client, __package__, "return_taken_to_queue.lua")(keys=[taking, queue]))


class TrackingQoS(kombu_redis.QoS):
    """kombu's QoS, also keeping the set of delivery tags this worker holds."""

    def append(self, message: Any, delivery_tag: Any) -> None:
        if _tracking is None:
            super().append(message, delivery_tag)
            return
        identity, keys = _tracking
        # kombu's own record, with the item out of the taking list in the same atomic step: a
        # second round trip would widen the window in which a killed worker loses a message
        # it took off the queue but had not yet recorded.
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        # The item as it was moved into this worker's taking list
        # (`worker.process.broker.transport`): it leaves the list in the same step that
        # records it as unacknowledged.
        taken = getattr(self.channel, "taken_item", None)
        script_keys = [
            self.unacked_index_key,
            self.unacked_key,
            taken[0] if taken is not None else keys.taking(str(identity)),
        ]
        # The delivery is counted in the same step (`tasks.delivery.receipt`): the count the
        # consumer needs first thing costs no round trip of its own.
        task_id = _countable_task_id(message) if _deliveries_ttl_s else None
        if task_id is not None:
            script_keys.append(keys.deliveries(task_id))
        args = [delivery_tag, time.time(), record, taken[1] if taken is not None else b""]
        with self.channel.conn_or_acquire() as client:
            # One script, not MULTI/EXEC: two commands fewer, and the count's lifetime is set
            # by the command that creates it (`lua/record_taken.lua`).
            count = _record_taken(client)(
                keys=script_keys, args=[*args, _deliveries_ttl_s or 0], client=client
            )
        if count is not None:
            message.grants_deliveries = int(count)
        self.channel.taken_item = None  # recorded: out of the taking list
        virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        # kombu's removal. Inside kombu's restore (`restore_by_tag`) it joins that transaction.
        # An ack or a reject, which pass no pipe, sends it as a plain pipeline instead of
        # MULTI/EXEC (one round trip either way, two commands fewer): the hash entry goes
        # first, and once it is gone nothing can restore the message, so an index entry a
        # broken connection leaves behind is a dangling tag that `restore_by_tag` finds without
        # a record and clears. The index entry goes last: it is how survivors find a dead
        # worker's records (`owned_tags`).
        if pipe is None:
            with self.channel.conn_or_acquire() as client:
                pipe = client.pipeline(transaction=False)
        pipe.hdel(self.unacked_key, delivery_tag)
        return pipe.zrem(self.unacked_index_key, delivery_tag)
