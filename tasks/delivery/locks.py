"""The fleet's locks in Redis, on one mechanism: redis-py's `Lock`.

redis-py's `Lock` takes a key with a random token (SET NX PX) and checks the token atomically
(its own Lua) when it extends or releases the lock, so a lock that lapsed and was taken by
someone else is never renewed or released as ours. Two locks are built on it here:

- the request lock (`RequestLocks`), so two deliveries of one request never work on it at once;
- the grant lock (`GrantLocks`), so `merge` and `replace` never lose an update.

The request lock. Duplicates arise when a producer or the intake bridge enqueues the same
request twice, and when Redis comes back after a restart and returns messages whose first
delivery failed to record. The second delivery waits for the lock: either the first records an
outcome (the second then finds it), or the lock lapses because its holder died or lost Redis,
and the second takes over. Its lifetime is short (the heartbeat's, GRANTS_HEARTBEAT_TTL_S) and
a thread of the holding process renews it while the work goes on: a crashed holder frees it
within seconds, before the surviving workers put its message back on the queue
(`worker.process.recovery`), so the message is not held up by its own dead delivery. A waiter
waits as long as a task can run.

The grant lock. Two requests that change one grant at the same moment (on two workers) would
each read the grant, compute their PATCH from what they read, and the second PATCH would
overwrite the first one's scopes. Holding this lock from the lookup to the PATCH makes the
second read what the first wrote. The grant is named by Auth0's uniqueness key, (client_id or
default_for, audience, subject_type), which is known before its id is. It lives for one HTTP
call at a time (`HeldGrant.renew` before each call), so a holder that dies releases it within
seconds, while a live holder keeps it for as long as its calls take.

A call that timed out at the client is not over at the tenant: a write whose reply was lost
keeps the grant fenced (`tasks.delivery.fences`) until it can no longer land, and whoever takes
the grant lock first waits, lock released, for the fence to pass. Writes under the lock go
through `HeldGrant.write`, which arms the fence; a DELETE fits it as a PATCH does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from grant_worker.tasks.delivery.fences import WriteFences
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import CreateClientGrant

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often a waiter asks again for a taken lock.
POLL_S = 0.2
GRANT_POLL_S = 0.05


class LockBusy(Exception):
    """Raised when a request's lock stayed taken for longer than it can be held."""


class GrantBusy(Exception):
    """Raised when the grant's lock stayed taken for longer than the caller could wait."""


def _acquire(
    client: redis.Redis, key: str, *, ttl_s: float, wait_s: float, poll_s: float
) -> Lock | None:
    """The lock `key`, held for `ttl_s` from now; None when it stayed taken for `wait_s`.

    Not thread-local: the request lock is renewed from a thread of its own.
    """
    lock = client.lock(
        key, timeout=ttl_s, sleep=poll_s, blocking_timeout=wait_s, thread_local=False
    )
    return lock if lock.acquire() else None


def _release(lock: Lock) -> None:
    """Release `lock` if it is still ours; one that lapsed may be someone else's by now."""
    with suppress(LockError):
        lock.release()


class RequestLocks:
    def __init__(
        self, client: redis.Redis, keys: Keys, *, ttl_s: float, wait_s: float | None = None
    ) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s
        self._wait_s = ttl_s if wait_s is None else wait_s
        self._held: dict[str, Lock] = {}
        self._held_lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    @contextmanager
    def hold(self, request_id: str) -> Iterator[None]:
        """Hold the lock of `request_id`, waiting (up to `wait_s`) for another holder.

        Raises `LockBusy` if it is still taken after that.
        """
        key = self._keys.lock(request_id)
        lock = _acquire(
            self._client, key, ttl_s=self._ttl_s, wait_s=self._wait_s + POLL_S, poll_s=POLL_S
        )
        if lock is None:
            raise LockBusy(f"request {request_id} stayed locked for {self._wait_s:.0f} s")
        self._keep(key, lock)
        try:
            yield
        finally:
            self._drop(key)
            _release(lock)

    @contextmanager
    def adopt(self, request_id: str, token: bytes) -> Iterator[Callable[[], None]]:
        """Hold the lock of `request_id` that `tasks.delivery.admission` took with `token`:
        renewed and released as one taken by `hold`. Yields what to call once a script has
        released it (the recorder's, with the outcome): no second round trip then."""
        key = self._keys.lock(request_id)
        lock = self._client.lock(key, timeout=self._ttl_s, sleep=POLL_S, thread_local=False)
        lock.local.token = token

        def released() -> None:
            self._drop(key)
            lock.local.token = None  # redis-py's `release` then sends nothing

        self._keep(key, lock)
        try:
            yield released
        finally:
            self._drop(key)
            _release(lock)

    def _keep(self, key: str, lock: Lock) -> None:
        with self._held_lock:
            self._held[key] = lock
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
                held = list(self._held.values())
            for lock in held:
                try:
                    lock.reacquire()
                except LockError:
                    # Lapsed and perhaps taken by another delivery, or released meanwhile:
                    # not ours to renew.
                    pass
                except redis.RedisError as exc:
                    # It lapses then, and a second delivery may start: the outcome record
                    # still lets only one of them record.
                    log.warning("could not renew a request lock: %s", type(exc).__name__)


class HeldGrant:
    """A held grant lock; `renew` before each call made under it, `write` around each write."""

    def __init__(self, lock: Lock, fences: WriteFences | None = None, fence: str = "") -> None:
        self._lock = lock
        self._fences = fences
        self._fence = fence

    def write(self, call: Callable[[], T]) -> T:
        """Run `call`, a write to the grant (PATCH, DELETE), fenced while it may still land."""
        return call() if self._fences is None else self._fences.write(self._fence, call)

    def renew(self) -> None:
        """Give the lock its full lifetime again; raises `GrantBusy` if it lapsed meanwhile."""
        try:
            self._lock.reacquire()
        except LockError as exc:
            raise GrantBusy("the grant's lock lapsed while it was held") from exc


class GrantLocks:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        ttl_s: float,
        fences: WriteFences | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s
        self._fences = fences
        self._clock = clock
        self._sleep = sleep

    @contextmanager
    def hold(self, grant: CreateClientGrant, *, wait_s: float) -> Iterator[HeldGrant]:
        """Hold the lock of the grant `grant` would create, waiting up to `wait_s` for it.

        Raises `GrantBusy` when it is not free in time.
        """
        owner = grant.client_id or f"default_for:{grant.default_for}"
        names = (owner, grant.audience, grant.effective_subject_type)
        key, fence = self._keys.grant_lock(*names), self._keys.grant_fence(*names)
        deadline = self._clock() + wait_s
        while True:
            lock = _acquire(
                self._client,
                key,
                ttl_s=self._ttl_s,
                wait_s=max(deadline - self._clock(), GRANT_POLL_S),
                poll_s=GRANT_POLL_S,
            )
            if lock is None:
                raise GrantBusy(
                    f"the grant of {owner} on {grant.audience} stayed locked by another "
                    f"request for {wait_s:.1f} s"
                )
            fenced_s = self._fences.left_s(fence) if self._fences is not None else 0.0
            if not fenced_s:
                break
            # A write whose reply was lost may still land: read the grant only after it.
            _release(lock)
            left_s = deadline - self._clock()
            if fenced_s > left_s:
                raise GrantBusy(
                    f"the grant of {owner} on {grant.audience} is fenced for {fenced_s:.1f} s "
                    "more: an earlier write whose reply was lost may still land"
                )
            log.info("grant fenced for %.1f s: an earlier write may still land", fenced_s)
            self._sleep(fenced_s)
        try:
            yield HeldGrant(lock, self._fences, fence)
        finally:
            _release(lock)
