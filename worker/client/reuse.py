"""`grants submit --request-id ID` with an id that was used before.

A request id is an idempotency key (docs/design.md, "The request"): the same id with the same
request answers the recorded outcome without a call, so a retrying script is given that outcome
(nothing is enqueued again); with a different request it would be rejected
(`request_id_reused`), so the command refuses it, saying for what the id was used and how that
ended. Neither retries anything, so the refusal says how to: `grants dlq replay ID` for a
request that failed, a new id for a new request.
"""

from __future__ import annotations

from dataclasses import dataclass

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import GrantRequest, Outcome
from grant_worker.tasks.outcomes.claims import Claim, RequestClaims
from grant_worker.worker.client.grant_client import GrantClient


@dataclass(frozen=True)
class EarlierUse:
    """What an id was used for: this very request (its `outcome`, None while in flight), or
    another one (`refusal` says which and how it ended)."""

    same_request: bool
    outcome: Outcome | None
    refusal: str = ""


def earlier_use(client: GrantClient, request: GrantRequest) -> EarlierUse | None:
    """How `request`'s id was used before, or None when it never was."""
    assert request.request_id is not None
    request_id = request.request_id
    keys = Keys(client.settings.grants_key_prefix)
    claims = RequestClaims(client.redis, keys, ttl_s=client.settings.grants_record_ttl_s)
    claim = claims.get(request_id)
    outcome = client.outcome(request_id)
    if claim is None and outcome is None:
        return None
    if claim is not None and claim.owns(request):
        return EarlierUse(same_request=True, outcome=outcome)
    return EarlierUse(
        same_request=False, outcome=outcome, refusal=_refusal(request_id, claim, outcome)
    )


def _refusal(request_id: str, claim: Claim | None, outcome: Outcome | None) -> str:
    # In flight, the claim holds the request; once recorded, its outcome's grant tells it.
    described = (claim or Claim("", {})).described_by(outcome).describe()
    what = f"for {described}" if described else "before"
    if outcome is None:
        ended = "it has no outcome yet (it is queued or being worked on)"
    else:
        ended = f"it ended {outcome.status}"
        if outcome.error is not None:
            ended += f" ({outcome.error.code}: {outcome.error.message})"
        ended += f" at {outcome.finished_at}"
    advice = (
        f"to retry it, run `grants dlq replay {request_id}`"
        if outcome is not None and not outcome.done
        else "the same id would only answer that outcome again"
    )
    return (
        f"request id {request_id} was already used {what}; {ended}. A request id is an "
        f"idempotency key: {advice}; for a new request, give it an id of its own."
    )
