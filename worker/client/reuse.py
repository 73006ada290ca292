"""`grants submit --request-id ID` refuses an id that was used before, saying for what and how
it ended, instead of enqueueing a request the worker would answer with someone else's outcome.

A request id is an idempotency key (docs/design.md, "The request"): the same id with the same
request answers the recorded outcome without a call; with a different request it is rejected
(`request_id_reused`). Neither retries anything, so the command says how to: `grants dlq replay
ID` for a request that failed, a new id for a new request.
"""

from __future__ import annotations

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.outcomes.claims import Claim, RequestClaims
from grant_worker.worker.client.grant_client import GrantClient


def earlier_use(client: GrantClient, request_id: str) -> str | None:
    """Why `request_id` cannot be submitted again, or None when it was never used."""
    keys = Keys(client.settings.grants_key_prefix)
    claims = RequestClaims(client.redis, keys, ttl_s=client.settings.grants_record_ttl_s)
    claim = claims.get(request_id)
    outcome = client.outcome(request_id)
    if claim is None and outcome is None:
        return None
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
