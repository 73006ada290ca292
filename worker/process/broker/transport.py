"""kombu's Redis transport, guarded against list items that are not messages at all.

kombu pops an item off the queue's list and parses it as its JSON envelope; an item that is not
one (a producer's bug, a hand-typed LPUSH) raises inside the worker's event loop, and Celery
ends the worker with "Unrecoverable error", after the item was already removed from Redis: the
worker dies and the item is gone without a trace. Here such an item becomes a dead letter with
its raw text, through the handler the app puts in the transport options, and the worker keeps
consuming.

It also closes a window in which kombu loses a message when Redis goes away: BRPOP has taken the
message off the list, and the write that records it as unacknowledged fails. kombu lets it go
with the exception; here it is kept in the process and pushed back onto its queue as soon as
Redis answers again.
A worker killed while Redis is down still loses what it keeps this way.

In a worker, a message is not popped at all: BRPOPLPUSH moves it atomically from the queue into
the worker's own taking list (`Keys.taking(identity)`), and it leaves that list in the same
transaction that records it as unacknowledged (`worker.process.broker.qos.TrackingQoS`). With
kombu's BRPOP, a worker killed between the pop and that record would lose the message for good.
Whatever a dead worker's taking list still holds goes back onto the queue with its
unacknowledged messages (`worker.process.recovery`).

Every item is bounded before it is decoded (size, then nesting depth: `tasks.messages`), and
every received message gets a delivery tag of its own, as a broker would give it: kombu keys its
unacknowledged messages by the tag the *producer* wrote, so a producer that reuses one tag
would make one ack delete the record of every message in flight. A worker's tags bear its mark
(`worker.process.broker.qos.new_delivery_tag`): that is how survivors find what it held.

Broker faults that are not connection errors to kombu (`OOM`, `READONLY`) are turned into
connection errors here, so the consumer reconnects with a backoff instead of ending the worker,
and consuming stays paused while messages taken off the queue cannot be put back
(`worker.process.broker.monitor`).

The transport registers itself under the URL schemes `grants-redis`, `grants-rediss` and
`grants-sentinel`; `worker.process.app` maps `REDIS_URL` onto them, so users keep writing `redis://`,
`rediss://` and kombu's `sentinel://host:port;sentinel://host:port`.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from queue import Empty
from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from grant_worker.tasks.broker_faults import classify, is_broker_fault
from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.decoding import decode_json
from grant_worker.tasks.messages.limits import MAX_JSON_DEPTH, MAX_MESSAGE_BYTES
from grant_worker.worker.process.broker.monitor import broker_state
from grant_worker.worker.process.broker.qos import (
    TrackingQoS,
    new_delivery_tag,
    return_taken,
    taking_key,
)

log = logging.getLogger(__name__)

SCHEMES = {"redis": "grants-redis", "rediss": "grants-rediss", "sentinel": "grants-sentinel"}
# The body travels base64-encoded inside kombu's JSON envelope (4/3 of its size), beside the
# headers and properties. Items above this are refused unread; the consumer's inspection
# (`tasks.messages.inspection`) then holds the decoded message, headers and properties
# included, to `MAX_MESSAGE_BYTES` exactly.
MAX_ITEM_BYTES = MAX_MESSAGE_BYTES * 4 // 3 + 16 * 1024
# Transport option holding the name under which the callable `(raw_text, reason) -> None` that
# records a dead letter is registered (`register_malformed_handler`). A name, not the callable:
# Celery sends its configuration to `celery inspect conf`/`stats` as JSON, and a function in it
# broke every remote-control reply ("Object of type function is not JSON serializable").
MALFORMED_HANDLER_OPTION = "grants_malformed_handler"

MalformedHandler = Callable[[str, str], None]
# Weak: the app that registered a handler keeps it alive; an app gone, its entry goes too.
_malformed_handlers: weakref.WeakValueDictionary[str, MalformedHandler] = (
    weakref.WeakValueDictionary()
)


def register_malformed_handler(name: str, handler: MalformedHandler) -> str:
    """Register `handler` under `name` (the value of the transport option); returns `name`.

    Held weakly: the caller keeps `handler` alive as long as it may be needed."""
    _malformed_handlers[name] = handler
    return name


# Messages taken off a queue whose "unacknowledged" record could not be written: (payload,
# queue name). Process-wide, because the channel that took them is replaced on reconnect.
_taken_not_recorded: deque[tuple[dict[str, Any], str]] = deque()
_taken_lock = threading.Lock()


def broker_url(redis_url: str) -> str:
    """`REDIS_URL` with its scheme swapped for the guarded transport's (each alternate too)."""
    return ";".join(_swap_scheme(part, SCHEMES) for part in redis_url.split(";"))


def _swap_scheme(url: str, schemes: dict[str, str]) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{schemes.get(scheme, scheme)}{sep}{rest}"


class GuardedChannel(kombu_redis.Channel):
    # Also records which worker holds which unacknowledged message (crash recovery,
    # `worker.process.recovery`).
    QoS = TrackingQoS
    # (taking list, queue) while a BRPOPLPUSH is under way; None while kombu's BRPOP is.
    _moving: tuple[str, str] | None = None
    # (taking list, item) while the item moved there is being delivered: `TrackingQoS` takes
    # it out of the list as it records the message.
    taken_item: tuple[str, bytes] | None = None
    # False until the taking list is known empty, and again after anything that may leave an
    # item there (a lost reply, a failed record): then `_brpop_start` first puts it back.
    _taking_clean = False

    def _brpop_read(self, **options: Any) -> bool | None:
        # kombu's own `_brpop_read`, but the item is checked before it is delivered.
        moving, self._moving = self._moving, None
        keep_taken = False
        try:
            try:
                if moving is None:
                    dest__item = self.client.parse_response(
                        self.client.connection, "BRPOP", **options
                    )
                else:
                    item = self.client.parse_response(
                        self.client.connection, "BRPOPLPUSH", **options
                    )
                    dest__item = (moving[1], item) if item is not None else None
                    if not broker_state.ready:
                        # The move is a write, refused while Redis is full or read-only: taken
                        # (or timed out empty), Redis accepts writes again.
                        broker_state.note_ok()
            except self.connection_errors:
                self._taking_clean = False
                self.client.connection.disconnect()
                raise
            except redis.ResponseError as exc:
                if classify(exc) is None:
                    raise
                # OOM, or READONLY from a replica after a failover: the move was refused and
                # nothing was taken. Reconnect (a pause) instead of ending the worker.
                broker_state.note_fault(exc)
                self.client.connection.disconnect()
                raise redis.ConnectionError(f"broker fault: {type(exc).__name__}") from exc
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            if moving is not None:
                self.taken_item = (moving[0], item)
            payload = self._checked(item)
            if payload is not None:
                try:
                    self.connection._deliver(payload, dest)
                except Exception as exc:
                    if not is_broker_fault(exc):
                        # Not Redis failing but the message (kombu counts KeyError among its
                        # connection errors): keeping it would retry it for ever.
                        self._dead_letter(
                            dumps(payload)[:2048],
                            f"message: cannot be delivered ({type(exc).__name__}: {exc})"[:500],
                        )
                        return True
                    if moving is not None:
                        # Still in our taking list in Redis: `_brpop_start` puts it back once
                        # Redis answers (and a survivor does, should we die meanwhile).
                        keep_taken = True
                        self._taking_clean = False
                    else:
                        # Off the list, not yet in the unacknowledged hash: only we hold it now.
                        with _taken_lock:
                            _taken_not_recorded.append((payload, dest))
                    broker_state.note_fault(exc)
                    log.warning("a message taken as Redis failed is kept to be put back")
                    if isinstance(exc, redis.ConnectionError):
                        raise
                    # OOM / READONLY are no connection errors to kombu, and would end the
                    # worker: reconnect instead, which pauses consuming.
                    raise redis.ConnectionError(f"broker fault: {type(exc).__name__}") from exc
            return True
        finally:
            # Still set: not recorded. Dead-lettered (or not a message at all), it leaves the
            # taking list here; taken as Redis failed, it stays there to be put back.
            leftover, self.taken_item = self.taken_item, None
            if leftover is not None and not keep_taken:
                self._drop_taken(*leftover)
            self._in_poll = None  # type: ignore[assignment]  # kombu annotates it as bool
            flush_reauth = getattr(self, "_flush_brpop_reauth", None)
            if flush_reauth is not None:
                flush_reauth()

    def _connparams(self, asynchronous: bool = False) -> Any:
        transport = self.connection
        if transport is None or transport.client is None:
            # The transport closed under this channel (Redis restarted, the consumer reconnected
            # on a new one) and a late ack or reject still comes through it. A connection error
            # is what kombu and Celery handle: the reject is logged and the message, still
            # unacknowledged in Redis, comes back by the visibility timeout. kombu's own
            # AttributeError here ended the worker ("Unrecoverable error").
            raise redis.ConnectionError("this channel's connection to Redis is closed")
        return super()._connparams(asynchronous)

    def close(self) -> None:
        try:
            super().close()
        except AttributeError:
            # kombu race, seen when Redis restarts under a working worker: the transport has
            # dropped its connection while this channel closes, and restoring the unacknowledged
            # messages trips over it ("Unrecoverable error": the worker exits). The messages
            # are still in the unacknowledged hash in Redis; the visibility timeout returns them.
            self.closed = True
            log.warning("channel closed without restoring its messages (its connection is gone)")

    def _brpop_start(self, timeout: Any = None) -> None:
        if not self._put_back_taken():
            # Taking more off the queue while we cannot put back what we hold would move the
            # queue into this process: stop consuming (the consumer reconnects, with a pause).
            time.sleep(broker_state.backoff_s())
            raise redis.ConnectionError(
                f"broker not writable ({broker_state.fault}); "
                f"{len(_taken_not_recorded)} message(s) held to be put back"
            )
        taking = taking_key()
        queues = list(self.active_queues)
        if taking is None or len(queues) != 1 or self.global_keyprefix:
            super()._brpop_start(timeout)
            return
        if not self._taking_clean:
            if not self._return_taken(taking, queues[0]):
                time.sleep(broker_state.backoff_s())
                raise redis.ConnectionError(f"broker not writable ({broker_state.fault})")
            self._taking_clean = True
        # kombu's `_brpop_start`, moving instead of popping (see the module's docstring).
        # One queue and one priority step (`worker.process.app`): one source list.
        queue = self._q_for_pri(queues[0], 0)
        self._moving = (taking, queues[0])
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]  # kombu: None
        if timeout is None:
            timeout = self.brpop_timeout
        self.client.connection.send_command("BRPOPLPUSH", queue, taking, timeout or 0)

    def _drop_taken(self, taking: str, item: bytes) -> None:
        try:
            with self.conn_or_acquire() as client:
                client.lrem(taking, 1, item)
        except Exception:
            self._taking_clean = False
            # Left there, it goes back onto the queue and is refused again: never lost.
            log.warning("could not take a refused item out of %s", taking, exc_info=True)

    def _return_taken(self, taking: str, queue: str) -> bool:
        """Put back onto `queue` what the taking list still holds: messages taken as Redis
        failed, before they could be recorded. False while Redis does not answer."""
        try:
            with self.conn_or_acquire() as client:
                moved = return_taken(client, taking, self._q_for_pri(queue, 0))
        except Exception as exc:
            if is_broker_fault(exc):
                broker_state.note_fault(exc)
                return False
            raise
        if moved:
            log.warning("%d message(s) taken as Redis failed were put back on %s", moved, queue)
        return True

    def _put_back_taken(self) -> bool:
        """Return kept messages to the head of their queue, oldest first, while Redis answers.

        Returns False while some could not be put back.
        """
        with _taken_lock:
            while _taken_not_recorded:
                payload, queue = _taken_not_recorded[0]
                key = self._q_for_pri(queue, self._get_message_priority(payload, reverse=False))
                try:
                    # BRPOP takes from the right: RPUSH puts it next in line. A pooled
                    # connection, not the one BRPOP is about to use.
                    with self.conn_or_acquire() as client:
                        client.rpush(key, dumps(payload))
                except Exception as exc:
                    if is_broker_fault(exc):
                        broker_state.note_fault(exc)
                        return False
                    raise
                _taken_not_recorded.popleft()
                log.warning("a message taken as Redis failed was put back on %s", queue)
        return True

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        # The synchronous path (basic_get) reads items too; skip the ones that are not messages.
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                while item := client.rpop(self._q_for_pri(queue, pri)):
                    payload = self._checked(item)
                    if payload is not None:
                        return payload
        raise Empty()

    def _checked(self, item: bytes | str) -> dict[str, Any] | None:
        """The parsed envelope, or None after dead-lettering an item that is not a message.

        The item is bounded before it is decoded; the message gets a delivery tag of its own.
        """
        raw = item if isinstance(item, bytes) else item.encode("utf-8", "surrogatepass")
        try:
            payload = decode_json(
                raw,
                what="broker item",
                max_bytes=MAX_ITEM_BYTES,
                max_depth=MAX_JSON_DEPTH,
                loads=loads,
            )
        except RequestInvalid as exc:
            preview = raw[:1024].decode("utf-8", "backslashreplace")
            self._dead_letter(preview, f"message: malformed broker envelope ({exc.message})")
            return None
        text = raw.decode("utf-8", "backslashreplace")
        try:
            if not isinstance(payload, dict):
                raise TypeError(f"a JSON {type(payload).__name__}, not an object")
            properties = payload.setdefault("properties", {})
            if not isinstance(properties, dict):
                raise TypeError("properties are not an object")
            properties["delivery_tag"] = new_delivery_tag()
            delivery_info = properties.get("delivery_info")
            if not (
                isinstance(delivery_info, dict)
                and {"exchange", "routing_key"} <= delivery_info.keys()
            ):
                raise TypeError("properties.delivery_info needs `exchange` and `routing_key`")
            self.Message(payload, channel=self)  # what delivery would build; raises if it can't
        except Exception as exc:
            reason = (
                "message: malformed broker envelope, not a Celery/kombu message "
                f"({type(exc).__name__}: {exc})"
            )
            self._dead_letter(text, reason[:500])
            return None
        return payload

    def _dead_letter(self, text: str, reason: str) -> None:
        name = self.connection.client.transport_options.get(MALFORMED_HANDLER_OPTION)
        handler = _malformed_handlers.get(name) if isinstance(name, str) else None
        log.error("%s; dead-lettered", reason)
        if handler is not None:
            handler(text, reason)


class GuardedTransport(kombu_redis.Transport):
    Channel = GuardedChannel


class GuardedSentinelChannel(GuardedChannel, kombu_redis.SentinelChannel):
    """The same guards over Sentinel: the master is looked up through the sentinels."""

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:
        # kombu finds the sentinels by the scheme `sentinel` of each alternate URL; ours say
        # `grants-sentinel`. Show it kombu's spelling for the lookup only.
        client = self.connection.client
        alternates = client.alt
        client.alt = [_swap_scheme(url, {"grants-sentinel": "sentinel"}) for url in alternates]
        try:
            return super()._sentinel_managed_pool(asynchronous)
        finally:
            client.alt = alternates


class GuardedSentinelTransport(kombu_redis.SentinelTransport):
    Channel = GuardedSentinelChannel


TRANSPORT_ALIASES.setdefault(
    "grants-redis", "grant_worker.worker.process.broker.transport:GuardedTransport"
)
TRANSPORT_ALIASES.setdefault(
    "grants-rediss", "grant_worker.worker.process.broker.transport:GuardedTransport"
)
TRANSPORT_ALIASES.setdefault(
    "grants-sentinel", "grant_worker.worker.process.broker.transport:GuardedSentinelTransport"
)
