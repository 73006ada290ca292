"""kombu's QoS as this project runs it: every delivery tag a worker holds is also in its held
set, and every message it takes off the queue waits in its taking list until it is recorded.

This process's identity is set once it works as a worker (`track_as`, by the recovery step);
producers and CLI processes have none, and their channels hold nothing. Survivors read the
held set and the taking list of a dead worker to put its messages back
(`worker.process.recovery`).
"""

from __future__ import annotations

import time
from typing import Any

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
        # kombu's own record, with the tag added to the held set in the same atomic step: a
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
            keys.held(str(identity)),
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
        # kombu's removal, also taking the tag out of the held set. Inside kombu's restore
        # (`restore_by_tag`) it joins that transaction. An ack or a reject, which pass no pipe,
        # sends it as a plain pipeline instead of MULTI/EXEC (one round trip either way, two
        # commands fewer): the hash entry goes first, and once it is gone nothing can restore
        # the message, so whatever a broken connection leaves of the rest is a dangling tag
        # every reader already tolerates (`restore_by_tag` finds no record and drops it;
        # recovery deletes the held set).
        if pipe is None:
            with self.channel.conn_or_acquire() as client:
                pipe = client.pipeline(transaction=False)
        pipe.hdel(self.unacked_key, delivery_tag)
        held = _held_key()
        if held is not None:
            pipe.srem(held, delivery_tag)
        return pipe.zrem(self.unacked_index_key, delivery_tag)
