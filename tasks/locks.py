"""A short per-request lock, so two deliveries of one request never work on it at once.

Duplicates arise when a producer or the intake bridge enqueues the same request twice; the lock
makes the second wait its turn (it is acknowledged, and the first delivery's outcome stands).
The lock expires on its own, before the visibility timeout, so a crashed holder never blocks the
redelivery of its own message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tasks.keys import Keys

# Delete the lock only if it is still ours (it may have expired and been taken since).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RequestLocks:
    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: float) -> None:
        self._client = client
        self._keys = keys
        self._ttl_ms = int(ttl_s * 1000)
        self._release = client.register_script(_RELEASE)

    @contextmanager
    def hold(self, request_id: str) -> Iterator[bool]:
        """Yield True while holding the lock of `request_id`, False if someone else holds it."""
        key = self._keys.lock(request_id)
        token = uuid.uuid4().hex
        held = bool(self._client.set(key, token, nx=True, px=self._ttl_ms))
        try:
            yield held
        finally:
            if held:
                self._release(keys=[key], args=[token])
