"""The fingerprint of a request: what Auth0 would make of it, and how conflicts are treated."""

from __future__ import annotations

from typing import Any

from grant_worker.tasks.messages.models import GrantRequest
from grant_worker.tasks.outcomes.claims import Claim, fingerprint, normalised


def request(**envelope: Any) -> GrantRequest:
    grant = {"client_id": "svc-1", "audience": "https://api/", **envelope.pop("grant", {})}
    return GrantRequest.model_validate({"grant": grant, **envelope})


def test_the_same_grant_written_differently_has_one_fingerprint() -> None:
    plain = request(grant={"scope": ["b", "a"]})
    spelled_out = request(
        grant={
            "scope": ["a", "b", "a"],
            "subject_type": "client",
            "organization_usage": "deny",
            "allow_any_organization": False,
        },
        on_conflict="keep",
        metadata={"ticket": "T-1"},
        batch_id="batch-2",
    )
    assert fingerprint(plain) == fingerprint(spelled_out)


def test_another_grant_or_another_conflict_mode_is_another_request() -> None:
    base = fingerprint(request(grant={"scope": ["a"]}))
    assert fingerprint(request(grant={"scope": ["a", "b"]})) != base
    assert fingerprint(request(grant={"scope": ["a"]}, on_conflict="fail")) != base
    assert fingerprint(request(grant={"scope": ["a"], "subject_type": "user"})) != base


def test_a_claim_describes_the_request_for_people() -> None:
    claim = Claim("x", normalised(request(grant={"scope": ["read:a"]}, on_conflict="merge")))
    assert claim.describe() == (
        "svc-1 on https://api/ (subject_type client), read:a, on_conflict merge"
    )
