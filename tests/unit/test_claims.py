"""The fingerprint of a request: what Auth0 would make of it, and how conflicts are treated."""

from __future__ import annotations

from typing import Any

from grant_worker.tasks.messages.models import GrantRequest, Outcome
from grant_worker.tasks.outcomes.claims import Claim, fingerprint, normalised, same_request


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


def test_a_fingerprint_is_eight_characters_that_tell_its_request_from_another() -> None:
    mine = request(grant={"scope": ["a"]})
    assert len(fingerprint(mine)) == 8
    assert same_request(fingerprint(mine), mine)
    assert not same_request(fingerprint(mine), request(grant={"scope": ["b"]}))


def test_once_only_the_fingerprint_is_left_the_recorded_grant_describes_the_request() -> None:
    outcome = Outcome(
        request_id="r", status="created", received_at="t", finished_at="t",
        grant={"id": "cgr_1", "client_id": "svc-1", "audience": "https://api/", "scope": ["a"]},
    )  # fmt: skip
    assert Claim("x", {}).describe() == ""
    assert Claim("x", {}).described_by(outcome).describe() == "svc-1 on https://api/, a"
