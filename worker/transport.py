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
Redis answers again (seen in the Redis-restart scenario: one request of a hundred lost).
A worker killed while Redis is down still loses what it keeps this way.

The transport registers itself under the URL schemes `grants-redis` and `grants-rediss`;
`worker.app` maps `REDIS_URL` onto them, so users keep writing `redis://` and `rediss://`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from grant_worker.worker.recovery import TrackingQoS

log = logging.getLogger(__name__)

SCHEMES = {"redis": "grants-redis", "rediss": "grants-rediss"}
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
    """`REDIS_URL` with its scheme swapped for the guarded transport's."""
    scheme, sep, rest = redis_url.partition("://")
    return f"{SCHEMES.get(scheme, scheme)}{sep}{rest}"


class GuardedChannel(kombu_redis.Channel):
    # Also records which worker holds which unacknowledged message (crash recovery, issue 9).
    QoS = TrackingQoS

    def _brpop_read(self, **options: Any) -> bool | None:
        # kombu's own `_brpop_read`, but the item is checked before it is delivered.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            payload = self._checked(item)
            if payload is not None:
                try:
                    self.connection._deliver(payload, dest)
                except self.connection_errors:
                    # Off the list, not yet in the unacknowledged hash: only we hold it now.
                    with _taken_lock:
                        _taken_not_recorded.append((payload, dest))
                    log.warning("a message taken as Redis went away is kept to be put back")
                    raise
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu annotates it as bool
            flush_reauth = getattr(self, "_flush_brpop_reauth", None)
            if flush_reauth is not None:
                flush_reauth()

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
        self._put_back_taken()
        super()._brpop_start(timeout)

    def _put_back_taken(self) -> None:
        """Return kept messages to the head of their queue, oldest first, while Redis answers."""
        with _taken_lock:
            while _taken_not_recorded:
                payload, queue = _taken_not_recorded[0]
                key = self._q_for_pri(queue, self._get_message_priority(payload, reverse=False))
                try:
                    # BRPOP takes from the right: RPUSH puts it next in line. A pooled
                    # connection, not the one BRPOP is about to use.
                    with self.conn_or_acquire() as client:
                        client.rpush(key, dumps(payload))
                except self.connection_errors:
                    return
                _taken_not_recorded.popleft()
                log.warning("a message taken as Redis went away was put back on %s", queue)

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
        """The parsed envelope, or None after dead-lettering an item that is not a message."""
        text = item.decode("utf-8", "backslashreplace") if isinstance(item, bytes) else item
        try:
            payload = loads(text)
            if not isinstance(payload, dict):
                raise TypeError(f"a JSON {type(payload).__name__}, not an object")
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


for _scheme in SCHEMES.values():
    TRANSPORT_ALIASES.setdefault(_scheme, "grant_worker.worker.transport:GuardedTransport")
