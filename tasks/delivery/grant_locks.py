"""A fleet-wide lock per grant, so that `merge` and `replace` never lose an update.

Two requests that change one grant at the same moment (on two workers) would each read the
grant, compute their PATCH from what they read, and the second PATCH would overwrite the first
one's scopes. Holding this lock from the lookup to the PATCH makes the second read what the
first wrote. The grant is named by Auth0's uniqueness key, (client_id or default_for, audience,
subject_type), which is known before its id is.

The lock lives for one HTTP call at a time (`renew` before each call), so a holder that dies
releases it within seconds, while a live holder keeps it for as long as its calls take.
redis-py's `Lock` does the token check and the renewal atomically.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import redis
from redis.exceptions import LockError

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import CreateClientGrant

POLL_S = 0.05


class GrantBusy(Exception):
    """Raised when the grant's lock stayed taken for longer than the caller could wait."""


class HeldGrant:
    """A held grant lock; `renew` before each call made under it."""

    def __init__(self, lock: redis.lock.Lock) -> None:
        self._lock = lock

    def renew(self) -> None:
        """Give the lock its full lifetime again; raises `GrantBusy` if it lapsed meanwhile."""
        try:
            self._lock.reacquire()
        except LockError as exc:
            raise GrantBusy("the grant's lock lapsed while it was held") from exc


class GrantLocks:
    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: float) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s

    @contextmanager
    def hold(self, grant: CreateClientGrant, *, wait_s: float) -> Iterator[HeldGrant]:
        """Hold the lock of the grant `grant` would create, waiting up to `wait_s` for it.

        Raises `GrantBusy` when it is not free in time.
        """
        owner = grant.client_id or f"default_for:{grant.default_for}"
        key = self._keys.grant_lock(owner, grant.audience, grant.effective_subject_type)
        lock = self._client.lock(
            key, timeout=self._ttl_s, sleep=POLL_S, blocking_timeout=max(wait_s, POLL_S)
        )
        if not lock.acquire():
            raise GrantBusy(
                f"the grant of {owner} on {grant.audience} stayed locked by another request "
                f"for {wait_s:.1f} s"
            )
        try:
            yield HeldGrant(lock)
        finally:
            # A lock that lapsed (a call outlived its lifetime) may be someone else's now.
            with suppress(LockError):
                lock.release()
