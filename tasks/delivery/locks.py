"""A short per-request lock, so two deliveries of one request never work on it at once.

Duplicates arise when a producer or the intake bridge enqueues the same request twice, and when
Redis comes back after a restart and returns messages whose first delivery failed to record. The
second delivery waits for the lock: either the first records an outcome (the second then finds
it), or the lock lapses because its holder died or lost Redis, and the second takes over.

The lock's own lifetime is short (the heartbeat's, GRANTS_HEARTBEAT_TTL_S) and a thread of the
holding process renews it while the work goes on: a crashed holder frees it within seconds,
before the surviving workers put its message back on the queue (`worker.process.recovery`), so the
message is not held up by its own dead delivery. A waiter waits as long as a task can run.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from grant_worker.tasks.keys import Keys

log = logging.getLogger(__name__)

POLL_S = 0.2

# Extend the lock only if it is still ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Delete the lock only if it is still ours (it may have expired and been taken since).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LockBusy(Exception):
    """Raised when a request's lock stayed taken for longer than it can be held."""


class RequestLocks:
    def __init__(
        self, client: redis.Redis, keys: Keys, *, ttl_s: float, wait_s: float | None = None
    ) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s
        self._wait_s = ttl_s if wait_s is None else wait_s
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._held: dict[str, str] = {}
        self._held_lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    @contextmanager
    def hold(self, request_id: str) -> Iterator[None]:
        """Hold the lock of `request_id`, waiting (up to `wait_s`) for another holder.

        Raises `LockBusy` if it is still taken after that.
        """
        key = self._keys.lock(request_id)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self._wait_s + POLL_S
        while not self._client.set(key, token, nx=True, px=int(self._ttl_s * 1000)):
            if time.monotonic() > deadline:
                raise LockBusy(f"request {request_id} stayed locked for {self._wait_s:.0f} s")
            time.sleep(POLL_S)
        self._keep(key, token)
        try:
            yield
        finally:
            self._drop(key)
            self._release(keys=[key], args=[token])

    def _keep(self, key: str, token: str) -> None:
        with self._held_lock:
            self._held[key] = token
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_forever, name="request-locks", daemon=True
                )
                self._renewer.start()

    def _drop(self, key: str) -> None:
        with self._held_lock:
            self._held.pop(key, None)

    def _renew_forever(self) -> None:
        while True:
            time.sleep(self._ttl_s / 3)
            with self._held_lock:
                held = list(self._held.items())
            for key, token in held:
                try:
                    self._renew(keys=[key], args=[token, int(self._ttl_s * 1000)])
                except redis.RedisError as exc:
                    # It lapses then, and a second delivery may start: the outcome record
                    # still lets only one of them record.
                    log.warning("could not renew a request lock: %s", type(exc).__name__)
