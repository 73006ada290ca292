"""Per-request bookkeeping across deliveries: how often it was delivered, whether it was sent.

Both survive a worker crash (they live in Redis) and expire with the outcome record.

The sent marker says whether a create of this request may have reached Auth0 without its reply
reaching us, so that a later 409 can be recognised as possibly our own:

| marker     | set when                                        | a later 409 is           |
|------------|-------------------------------------------------|--------------------------|
| (absent)   | never sent, or every send was cleanly refused   | someone else's grant     |
| `sending`  | just before a POST; left behind by a crash      | possibly ours            |
| `lost`     | the POST timed out, dropped or got a 5xx        | possibly ours            |
| `created`  | answered 201; the record is not written with it | ours                     |

A clean refusal (409, 400, a connect error: Auth0 certainly created nothing) takes back the
`sending` this send put there, and only that: an earlier send's state is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import redis

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.ride_along import RideAlong, SetOnce, run_script
from grant_worker.tasks.scripts import register

SENDING = "sending"
LOST = "lost"
CREATED = "created"


class SentMarker(Protocol):
    """Where a request's "may have been sent" state lives across deliveries (the ledger)."""

    def sending(self) -> bool:
        """Just before a POST; True when no earlier state was there."""

    def refused(self) -> None:
        """The POST was cleanly refused (or never connected): take back this send's mark."""

    def lost(self) -> None:
        """The POST's reply was lost: it may have created the grant."""

    def created(self) -> None:
        """The POST answered 201."""

    def sending_write(self) -> SetOnce | None:
        """What `sending` writes, for the step just before the POST to make in its own round
        trip (the fleet slot's script); None: only `sending` makes it."""


class SendMark:
    """One write's use of the sent marker, for a caller's `before_send` hook: marked once as the
    request goes out, then kept after a lost reply, taken back after a definite refusal of a
    send that made the mark, or set answered."""

    def __init__(self, marker: SentMarker | None, then: Callable[[], None] | None = None) -> None:
        self._marker = marker
        self._then = then
        self._fresh = False
        # Whether the step before the send made the mark already (`made_ahead`).
        self._made = False
        self.sent = False

    def ahead(self) -> SetOnce | None:
        """The mark, for the step just before the send to make in its round trip; None when
        there is none to make (no marker, or made already)."""
        if self.sent or self._made or self._marker is None:
            return None
        return self._marker.sending_write()

    def made_ahead(self, fresh: bool) -> None:
        """The step before the send made the mark (`fresh`: no earlier state was there)."""
        self._made = True
        self._fresh = fresh

    def before_send(self) -> None:
        if not self.sent and not self._made and self._marker is not None:
            self._fresh = self._marker.sending()
        self.sent = True
        if self._then is not None:
            self._then()

    def lost(self) -> None:
        if self._marker is not None:
            self._marker.lost()

    def refused(self) -> None:
        # Only a mark this send made: an earlier delivery's lost reply still stands.
        if self.sent and self._fresh and self._marker is not None:
            self._marker.refused()

    def answered(self) -> None:
        if self._marker is not None:
            self._marker.created()


class DeliveryLedger:
    """Counts deliveries (for `poison`) and remembers possibly-sent creates (for 409s)."""

    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s
        self._uncount = register(client, __package__, "ledger_uncount_delivery.lua")
        self._clear_sending = register(client, __package__, "ledger_clear_sending.lua")

    def count_delivery(self, request_id: str) -> int:
        """Count one more delivery of `request_id`; returns the deliveries so far, this one in."""
        key = self._keys.deliveries(request_id)
        pipe = self._client.pipeline()
        pipe.incr(key)
        pipe.expire(key, self._ttl_s)
        count, _ = pipe.execute()
        return int(count)

    def uncount_delivery(self, request_id: str, *, later: RideAlong | None = None) -> None:
        """Take back the delivery counted last: the request went back to the queue unworked.
        `later`'s queued writes go ahead of it, in its round trip."""
        run_script(self._uncount, [self._keys.deliveries(request_id)], [], later=later)

    def mark_sending(self, request_id: str) -> bool:
        """Before a POST: remember it may reach Auth0. True when no earlier state was there
        (then `mark_refused` may take it back); an earlier `lost` / `created` is kept."""
        write = self.sending_write(request_id)
        return bool(self._client.set(write.key, write.value, nx=True, ex=write.ttl_s))

    def sending_write(self, request_id: str) -> SetOnce:
        """The write `mark_sending` makes, for a script to make in its stead."""
        return SetOnce(self._keys.sent(request_id), SENDING, self._ttl_s)

    def mark_refused(self, request_id: str) -> None:
        """The POST was answered with a refusal (or never connected): it created nothing."""
        self._clear_sending(keys=[self._keys.sent(request_id)], args=[SENDING])

    def mark_lost(self, request_id: str) -> None:
        """The POST may have been applied, but its reply was lost (timeout, drop, 5xx)."""
        self._client.set(self._keys.sent(request_id), LOST, ex=self._ttl_s)

    def mark_created(self, request_id: str) -> None:
        """The POST answered 201: a 409 on a later delivery is certainly our own grant."""
        self._client.set(self._keys.sent(request_id), CREATED, ex=self._ttl_s)

    def sent_state(self, request_id: str) -> str | None:
        """`sending`, `lost`, `created`, or None when no create may have reached Auth0."""
        value = self._client.get(self._keys.sent(request_id))
        return value.decode() if isinstance(value, bytes) else value

    def was_sent(self, request_id: str) -> bool:
        """Whether a create of `request_id` may have reached Auth0 without our knowing."""
        return self.sent_state(request_id) is not None

    def marker(self, request_id: str, *, recorded_next: bool = False) -> LedgerMarker:
        """The `SentMarker` the provisioner drives for one delivery of `request_id`;
        `recorded_next`: the delivery ends in an outcome record as soon as it is answered."""
        return LedgerMarker(self, request_id, recorded_next=recorded_next)

    def forget_deliveries(self, request_id: str) -> None:
        """Start the delivery count afresh (a replay is a new chance, not a redelivery)."""
        self._client.delete(self._keys.deliveries(request_id))

    def deliveries(self, request_id: str) -> int:
        """Deliveries counted so far (0 when none, or when the count expired)."""
        return int(self._client.get(self._keys.deliveries(request_id)) or 0)


def delivery_count(raw: str | None) -> int | None:
    """A deliveries value as a count for people to read: 0 when absent, None when it is not
    a whole number (no writer of ours leaves one)."""
    try:
        return int(raw or 0)
    except ValueError:
        return None


class LedgerMarker:
    """Adapts the ledger to `SentMarker` for one request."""

    def __init__(
        self, ledger: DeliveryLedger, request_id: str, *, recorded_next: bool = False
    ) -> None:
        self._ledger = ledger
        self._request_id = request_id
        self._recorded_next = recorded_next

    def sending(self) -> bool:
        return self._ledger.mark_sending(self._request_id)

    def sending_write(self) -> SetOnce | None:
        return self._ledger.sending_write(self._request_id)

    def refused(self) -> None:
        self._ledger.mark_refused(self._request_id)

    def lost(self) -> None:
        self._ledger.mark_lost(self._request_id)

    def created(self) -> None:
        # With the outcome record next in line, the mark would be ended by that record a
        # moment later: nothing to write. Until the record lands, the `sending` before it makes
        # a later 409 possibly ours, as `created` would.
        if not self._recorded_next:
            self._ledger.mark_created(self._request_id)
