"""Admitting a delivery: the request's state read, and its lock and claim taken, in one step.

Before it works on a request the handler must know whether an outcome is recorded, take the
request lock, claim the request id and read the sent marker (`tasks.delivery.ledger`). Asked one
by one that is five round trips; `lua/admit_request.lua` answers them in one, atomically, so
the check "recorded already?" made under the lock is the same check as the one made before it.

Whatever is not the plain case (another delivery holds the lock, the id's record belongs to a
different request, the worker is stopping, Sentinel's replica confirmation) is left to the
handler's step-by-step path, which waits for the lock and confirms reads as before.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import redis

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.scripts import register


@dataclass(frozen=True)
class Admission:
    """What `Admissions.admit` found.

    `recorded`: `record` is the outcome record and `claim` the claim key (nothing taken).
    `busy`: another delivery holds the lock (nothing taken).
    `admitted`: the lock is held with `token`; `claim` is the earlier claim of another request
    ('' when claimed now or ours), `sent` the sent marker (None: no create may have gone).
    """

    state: Literal["recorded", "busy", "admitted"]
    token: bytes
    record: str = ""
    claim: str = ""
    sent: str | None = None


class Admissions:
    def __init__(
        self, client: redis.Redis, keys: Keys, *, lock_ttl_s: float, claim_ttl_s: int
    ) -> None:
        self._keys = keys
        self._lock_ttl_ms = int(lock_ttl_s * 1000)
        self._claim_ttl_s = claim_ttl_s
        self._admit = register(client, __package__, "admit_request.lua")

    def admit(self, request_id: str, claim_json: str) -> Admission:
        """Admit a delivery of `request_id`; `claim_json` is its claim ('' when ids are not
        checked for reuse)."""
        # The token redis-py's `Lock` would use, so that the held lock is an ordinary one.
        token = uuid.uuid4().hex.encode()
        keys = [
            self._keys.outcome_record(request_id),
            self._keys.lock(request_id),
            self._keys.claim(request_id),
            self._keys.sent(request_id),
        ]
        state, first, second = (
            _text(v)
            for v in self._admit(
                keys=keys, args=[token, self._lock_ttl_ms, claim_json, self._claim_ttl_s]
            )
        )
        if state == "recorded":
            return Admission("recorded", token, record=first, claim=second)
        if state == "busy":
            return Admission("busy", token)
        return Admission("admitted", token, claim=first, sent=second or None)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
