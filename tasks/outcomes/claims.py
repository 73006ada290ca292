"""Request ids as idempotency keys: which request an id was first used for.

The first delivery of a request id to be worked on claims the id with the fingerprint of its
request (the grant in Auth0's meaning, and `on_conflict`); the claim lives as long as the
outcome record. A later request under the same id with the same fingerprint gets the recorded
outcome; one with a different fingerprint is refused (`request_id_reused`), and neither the
claim nor the record changes. Claims are taken under the request lock, so two different
requests in flight under one id are told apart the same way every time: the one that took the
lock first owns the id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis

from grant_worker.tasks.conflicts import wanted
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import GrantRequest


def normalised(request: GrantRequest) -> dict[str, Any]:
    """What a request asks for, in Auth0's meaning: absent booleans are false, absent lists
    empty, lists compare as sets, an absent subject_type is `client`. Metadata and batch id
    are not part of it (they do not change what is created)."""
    grant = request.grant
    want = wanted(grant)
    return {
        "grant": {
            "client_id": grant.client_id,
            "default_for": grant.default_for,
            "audience": grant.audience,
            "subject_type": grant.effective_subject_type,
            "scope": sorted(want.scope),
            "organization_usage": want.organization_usage,
            "allow_any_organization": want.allow_any_organization,
            "authorization_details_types": sorted(want.authorization_details_types),
            "allow_all_scopes": want.allow_all_scopes,
        },
        "on_conflict": request.on_conflict,
    }


def fingerprint(request: GrantRequest) -> str:
    """SHA-256 of the normalised request as canonical JSON."""
    text = json.dumps(normalised(request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """The request a request id belongs to."""

    fingerprint: str
    request: dict[str, Any]

    def describe(self) -> str:
        """One line for people: whose grant, on what, with which scopes and mode."""
        grant = self.request.get("grant", {})
        owner = grant.get("client_id") or f"default_for {grant.get('default_for')}"
        scopes = ", ".join(grant.get("scope") or []) or "no scopes"
        if grant.get("allow_all_scopes"):
            scopes = "all scopes"
        return (
            f"{owner} on {grant.get('audience')} (subject_type {grant.get('subject_type')}), "
            f"{scopes}, on_conflict {self.request.get('on_conflict')}"
        )


class RequestClaims:
    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s

    def claim(self, request_id: str, request: GrantRequest) -> Claim | None:
        """Claim `request_id` for `request`; the earlier claim when it belongs to another
        request (nothing is changed then), else None (claimed now, or already ours)."""
        mine = Claim(fingerprint(request), normalised(request))
        value = json.dumps({"fingerprint": mine.fingerprint, "request": mine.request})
        if self._client.set(self._keys.claim(request_id), value, nx=True, ex=self._ttl_s):
            return None
        earlier = self.get(request_id)
        if earlier is None or earlier.fingerprint == mine.fingerprint:
            return None
        return earlier

    def get(self, request_id: str) -> Claim | None:
        raw = self._client.get(self._keys.claim(request_id))
        if not raw:
            return None
        data = json.loads(raw)
        return Claim(fingerprint=str(data["fingerprint"]), request=data.get("request") or {})

    def matches(self, request_id: str, request: GrantRequest) -> bool:
        """True when `request_id` is unclaimed or claimed by this very request."""
        earlier = self.get(request_id)
        return earlier is None or earlier.fingerprint == fingerprint(request)
