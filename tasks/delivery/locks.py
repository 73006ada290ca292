"""A short per-request lock, so two deliveries of one request never work on it at once.

Duplicates arise when a producer or the intake bridge enqueues the same request twice, and when
Redis comes back after a restart and returns messages whose first delivery failed to record. The
second delivery waits for the lock: either the first records an outcome (the second then finds
it), or the lock lapses because its holder died or lost Redis, and the second takes over. The
lock lapses before the visibility timeout, so a crashed holder never blocks its own message.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from grant_worker.tasks.keys import Keys

POLL_S = 0.2

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
    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: float) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s
        self._release = client.register_script(_RELEASE)

    @contextmanager
    def hold(self, request_id: str) -> Iterator[None]:
        """Hold the lock of `request_id`, waiting (up to its lifetime) for another holder.

        Raises `LockBusy` if it is still taken after that, which only a holder that renews it
        could cause.
        """
        key = self._keys.lock(request_id)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self._ttl_s + POLL_S
        while not self._client.set(key, token, nx=True, px=int(self._ttl_s * 1000)):
            if time.monotonic() > deadline:
                raise LockBusy(f"request {request_id} stayed locked for {self._ttl_s:.0f} s")
            time.sleep(POLL_S)
        try:
            yield
        finally:
            self._release(keys=[key], args=[token])
