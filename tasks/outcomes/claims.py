"""Request ids as idempotency keys: which request an id was first used for.

The first delivery of a request id to be worked on claims the id with the fingerprint of its
request (the grant in Auth0's meaning, and `on_conflict`). The claim key lives only while the
request is in flight: the recorder's script deletes it in the same step as it writes the
outcome record, and moves its fingerprint into the record (`tasks.outcomes.records`). From then
on the record's fingerprint owns the id, for as long as the record lives.

A later request under the same id with the same fingerprint gets the recorded outcome; one with
a different fingerprint is refused (`request_id_reused`), and neither the claim nor the record
changes. Claims are taken under the request lock, so two different requests in flight under one
id are told apart the same way every time: the one that took the lock first owns the id.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis

from grant_worker.tasks.conflicts import wanted
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import GrantRequest, Outcome
from grant_worker.tasks.outcomes.records import parse_pointer
from grant_worker.tasks.scripts import register


def normalised(request: GrantRequest) -> dict[str, Any]:
    """What a request asks for, in Auth0's meaning: absent booleans are false, absent lists
    empty, lists compare as sets, an absent subject_type is `client`. Metadata and batch id
    are not part of it (they do not change what is created). A revoke's carries its action
    and target, so a create and a revoke never share a fingerprint; a create's keeps the
    shape it always had, so that records written before revokes existed still match."""
    if request.action == "revoke":
        target: dict[str, Any] = {"grant_id": request.grant_id}
        if request.grant_id is None and request.grant is not None:
            grant = request.grant
            target = {
                "grant": {
                    "client_id": grant.client_id,
                    "default_for": grant.default_for,
                    "audience": grant.audience,
                    "subject_type": grant.effective_subject_type,
                }
            }
        return {"action": "revoke", **target}
    grant = request.creates
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
    """The first 48 bits of the SHA-256 of the normalised request as canonical JSON, in 8
    characters of URL-safe base64: short enough to keep the outcome record small, and two
    different requests under one id share it with a chance of 2**-48."""
    return _fingerprint_of(normalised(request))


def _fingerprint_of(shape: dict[str, Any]) -> str:
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()[:6]).decode("ascii")


def same_request(stored: str, request: GrantRequest) -> bool:
    """Whether a stored fingerprint is `request`'s."""
    return stored == fingerprint(request)


# The grant fields an outcome's grant shares with the normalised request (for `describe`).
_DESCRIBED = ("client_id", "default_for", "audience", "subject_type", "scope", "allow_all_scopes")


@dataclass(frozen=True)
class Claim:
    """The request a request id belongs to.

    `request` is the normalised request while the claim key holds it (in flight); once the
    outcome is recorded only the fingerprint remains, and `request` is {} until
    `described_by` fills it from the recorded outcome's grant.
    """

    fingerprint: str
    request: dict[str, Any]

    def owns(self, request: GrantRequest) -> bool:
        return same_request(self.fingerprint, request)

    def described_by(self, outcome: Outcome | None) -> Claim:
        """This claim, its request told from `outcome`'s grant where only the fingerprint was
        left (the grant as Auth0 returned it: no `on_conflict`)."""
        if self.request or outcome is None or not outcome.grant:
            return self
        grant = {name: outcome.grant[name] for name in _DESCRIBED if name in outcome.grant}
        return Claim(self.fingerprint, {"grant": grant})

    def describe(self) -> str:
        """One line for people: whose grant, on what, with which scopes and mode; "" when
        nothing but the fingerprint is known."""
        grant = self.request.get("grant")
        if self.request.get("action") == "revoke":
            return "revoke of " + (
                f"grant {self.request.get('grant_id')}" if not grant else _identity(grant)
            )
        if not grant:
            return ""
        owner = grant.get("client_id") or f"default_for {grant.get('default_for')}"
        scopes = ", ".join(grant.get("scope") or []) or "no scopes"
        if grant.get("allow_all_scopes"):
            scopes = "all scopes"
        subject = grant.get("subject_type")
        text = f"{owner} on {grant.get('audience')}" + (
            f" (subject_type {subject})" if subject else ""
        )
        text += f", {scopes}"
        if "on_conflict" in self.request:
            text += f", on_conflict {self.request.get('on_conflict')}"
        return text


def _identity(grant: dict[str, Any]) -> str:
    owner = grant.get("client_id") or f"default_for {grant.get('default_for')}"
    return f"{owner} on {grant.get('audience')} (subject_type {grant.get('subject_type')})"


class RequestClaims:
    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s
        self._claim = register(client, __package__, "claim_request_id.lua")

    def claim(self, request_id: str, request: GrantRequest) -> Claim | None:
        """Claim `request_id` for `request`; the earlier claim when it belongs to another
        request (nothing is changed then), else None (claimed now, or already ours)."""
        value = claim_value(request)
        keys = [self._keys.claim(request_id), self._keys.outcome_record(request_id)]
        record, claim = self._claim(keys=keys, args=[value, self._ttl_s])
        earlier = owner(str(record), str(claim))
        if earlier is None or earlier.owns(request):
            return None
        return earlier

    def get(self, request_id: str) -> Claim | None:
        """Who owns `request_id`: the in-flight claim, else the fingerprint its outcome record
        carries; None when neither says (never used, or used by unreadable input)."""
        pipe = self._client.pipeline(transaction=False)
        pipe.get(self._keys.outcome_record(request_id))
        pipe.get(self._keys.claim(request_id))
        record, claim = pipe.execute()
        return owner(record or "", claim or "")

    def matches(self, request_id: str, request: GrantRequest) -> bool:
        """True when `request_id` is unclaimed or claimed by this very request."""
        earlier = self.get(request_id)
        return earlier is None or earlier.owns(request)


def claim_value(request: GrantRequest) -> str:
    """The claim key's value for `request`: its fingerprint and normalised request."""
    return claim_parts(request)[0]


def claim_parts(request: GrantRequest) -> tuple[str, str]:
    """`request`'s claim value and its fingerprint, the request normalised once for both."""
    shape = normalised(request)
    owned = _fingerprint_of(shape)
    return json.dumps({"fingerprint": owned, "request": shape}), owned


def owner(record: str, claim: str) -> Claim | None:
    """Who owns a request id, told from its outcome record and claim key as read."""
    # A claim key, where there is one, holds the request in flight: its normalised request,
    # or only the fingerprint a replay moved back from the record (`tasks.outcomes.replays`).
    if claim:
        data = json.loads(claim)
        return Claim(fingerprint=str(data["fingerprint"]), request=data.get("request") or {})
    if record:
        owner = parse_pointer(record).fingerprint
        if owner:
            return Claim(fingerprint=owner, request={})
    return None
