"""Per-request bookkeeping across deliveries: how often it was delivered, whether it was sent.

Both survive a worker crash (they live in Redis) and expire with the outcome record.
"""

from __future__ import annotations

import redis

from grant_worker.tasks.keys import Keys

_DECR_TO_ZERO = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""


class DeliveryLedger:
    """Counts deliveries (for `poison`) and remembers possibly-sent creates (for 409s)."""

    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s

    def count_delivery(self, request_id: str) -> int:
        """Count one more delivery of `request_id`; returns the deliveries so far, this one in."""
        key = self._keys.deliveries(request_id)
        pipe = self._client.pipeline()
        pipe.incr(key)
        pipe.expire(key, self._ttl_s)
        count, _ = pipe.execute()
        return int(count)

    def uncount_delivery(self, request_id: str) -> None:
        """Take back the delivery counted last: the request went back to the queue unworked."""
        key = self._keys.deliveries(request_id)
        # Never below zero, even if the count expired in between.
        self._client.eval(_DECR_TO_ZERO, 1, key)

    def mark_sent(self, request_id: str) -> None:
        """Remember that a create for `request_id` may have reached Auth0."""
        self._client.set(self._keys.sent(request_id), "1", ex=self._ttl_s)

    def was_sent(self, request_id: str) -> bool:
        return bool(self._client.exists(self._keys.sent(request_id)))

    def forget_deliveries(self, request_id: str) -> None:
        """Start the delivery count afresh (a replay is a new chance, not a redelivery)."""
        self._client.delete(self._keys.deliveries(request_id))

    def deliveries(self, request_id: str) -> int:
        """Deliveries counted so far (0 when none, or when the count expired)."""
        return int(self._client.get(self._keys.deliveries(request_id)) or 0)
