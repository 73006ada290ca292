"""Write fences: a write whose reply was lost keeps its grant fenced until it can no longer land.

The grant lock (`tasks.delivery.locks.GrantLocks`) serialises the fleet's reads and writes of
one grant, but only for as long as the client waits. A PATCH that timed out at the client may
still be carried out by the tenant afterwards, and a PATCH carries the whole scope list: landing
after a later request's PATCH, it erases what that one added, while both requests reported
`updated`. A DELETE whose reply was lost is the same hazard for any write after it.

So every write to a grant is fenced. Before it is sent it arms the grant's fence for as long as
it could possibly land: the fleet slot wait (GRANTS_SLOT_WAIT_S), both HTTP timeouts (the
client's own wait) and GRANTS_WRITE_LANDING_S (how long after that the tenant may still carry
it out). A definite answer (any HTTP reply that
is not ambiguous, or a call never sent) takes the write's own entry back at once; a lost reply
leaves it, and so does a writer that dies mid-call. Whoever takes the grant lock next waits,
lock released, until the fence has passed, and only then reads the grant: what it reads then
already includes the late write, and its own write comes after it. The fence is a sorted set of
write tokens scored by Redis's clock, so every worker of the fleet reads one deadline.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import redis

from grant_worker.tasks.errors import Auth0Error, ReturnToQueue
from grant_worker.tasks.scripts import register

T = TypeVar("T")


def definitely_not_landing(exc: BaseException) -> bool:
    """Whether the write that failed with `exc` is over at the tenant: refused with an answer,
    or never sent (no slot, an open breaker). Anything else may still land."""
    if isinstance(exc, ReturnToQueue):
        return True
    return isinstance(exc, Auth0Error) and not getattr(exc, "ambiguous", False)


class WriteFences:
    """The fences of the fleet's grants; `landing_s` is how long a sent write may still land."""

    def __init__(self, client: redis.Redis, *, landing_s: float) -> None:
        self._client = client
        self._landing_ms = max(1, int(landing_s * 1000))
        self._arm = register(client, __package__, "fence_arm.lua")
        self._left = register(client, __package__, "fence_left.lua")

    def left_s(self, fence: str) -> float:
        """How long the grant fenced by `fence` stays fenced (0: not fenced)."""
        return max(0, int(self._left(keys=[fence]))) / 1000

    def write(self, fence: str, call: Callable[[], T]) -> T:
        """Run `call`, a write to the grant of `fence`, fenced while it may still land."""
        token = uuid.uuid4().hex
        self._arm(keys=[fence], args=[token, self._landing_ms])
        try:
            result = call()
        except BaseException as exc:
            if definitely_not_landing(exc):
                self._client.zrem(fence, token)
            raise
        self._client.zrem(fence, token)
        return result
