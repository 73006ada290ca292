"""From a validated revoke request to a `Revocation`, or to an error with `attempts`.

The story of one revoke, under the same pace, breaker and retry budget as a create
(`tasks.paced_run`):

1. Look the grant up: by id (`GET /client-grants/{id}`, 404 = not there) or by its uniqueness
   key (the listing, filtered). Auth0 answers DELETE with 204 whether or not the grant was there,
   so whether there was anything to delete comes from this lookup, never from the DELETE. A
   request naming the grant by both id and key (`grants sync`, from its listing) skips it: see
   `_as_listed`.
2. Nothing there → `absent`; but when an earlier delivery (or this one) may have sent a DELETE
   whose reply was lost (`sent_before`, kept by the `SentMarker`), the grant is gone because we
   deleted it → `revoked`, `resolved_by="lookup"`.
3. The worker's own grant (its client on the Management API audience) and system grants
   (`is_system`) are never deleted: `Protected` (the request ends `rejected`, `protected`).
4. DELETE, retried like any call; after a lost reply the grant is looked up again before
   anything else is sent: gone → `revoked` (`resolved_by="lookup"`), still there → DELETE again.
   The DELETE runs under the grant's fleet-wide lock (`tasks.delivery.locks`), so it never
   interleaves with a `merge` / `replace` PATCH of the same grant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from grant_worker.config.settings import Settings
from grant_worker.tasks.conflicts import lookup_filters, pick
from grant_worker.tasks.delivery.ledger import SendMark, SentMarker
from grant_worker.tasks.delivery.locks import GrantBusy, GrantLocks, HeldGrant
from grant_worker.tasks.errors import (
    Auth0Error,
    NotFound,
    Protected,
    RetryableError,
    ReturnToQueue,
)
from grant_worker.tasks.messages.models import CreateClientGrant, Grant, GrantRequest
from grant_worker.tasks.paced_run import FlowParts, PacedRun
from grant_worker.tasks.provision import GRANT_BUSY_DELAY_S
from grant_worker.tasks.ride_along import RideAlong

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Revocation:
    """How a revoke ended well."""

    status: Literal["revoked", "absent"]
    # The grant as it was before the DELETE; None for `absent`, and for a `revoked` whose
    # DELETE an earlier delivery sent (this delivery never saw the grant).
    grant: Grant | None
    # Management API calls made for this request (lookups and DELETEs, retries included).
    attempts: int
    resolved_by: Literal["lookup"] | None = None


@dataclass(frozen=True)
class ProtectedGrants:
    """Which grants a revoke must never delete."""

    management_audience: str
    # The worker's own client; None with a static token (its client is not known): then every
    # grant on the Management API audience is protected, as one of them may be the worker's.
    own_client_id: str | None

    def reason(self, grant: Grant) -> str | None:
        """Why `grant` must stay; None when it may be deleted."""
        if grant.is_system:
            return "it is a system grant (Auth0: cannot be modified or deleted directly)"
        on_management_api = _same_audience(grant.audience, self.management_audience)
        if on_management_api and self.own_client_id is None:
            return "it is on the Management API audience and the worker's own client is unknown"
        if on_management_api and grant.client_id == self.own_client_id:
            return "it is the worker's own grant on the Management API"
        return None


class Revoker:
    """Runs revokes against one tenant, with the provisioner's flow parts. Thread-safe."""

    def __init__(
        self, flow: FlowParts, protected: ProtectedGrants, *, grant_locks: GrantLocks | None
    ) -> None:
        self.flow = flow
        self.protected = protected
        self.grant_locks = grant_locks

    def revoke(
        self,
        request: GrantRequest,
        *,
        sent_before: bool = False,
        marker: SentMarker | None = None,
        later: RideAlong | None = None,
    ) -> Revocation:
        """Delete the grant `request` names, or find that there is none.

        Raises `Protected` (nothing deleted), an `Auth0Error` subclass, or `ReturnToQueue`;
        errors carry `attempts`.
        """
        run = _RevokeRun(self, sent_before=sent_before, marker=marker, later=later)
        try:
            return run.revoke(request)
        except (Auth0Error, Protected) as exc:
            exc.attempts = run.attempts
            raise


class _RevokeRun(PacedRun):
    def __init__(
        self,
        owner: Revoker,
        *,
        sent_before: bool,
        marker: SentMarker | None,
        later: RideAlong | None,
    ) -> None:
        super().__init__(owner.flow, later=later)
        self.revoker = owner
        # True once a DELETE of this request may have been applied without our seeing it.
        self.maybe_sent = sent_before
        self.marker = marker

    def revoke(self, request: GrantRequest) -> Revocation:
        target = _as_listed(request)
        if target is None:
            target = self._retrying(lambda: self._look_up(request))
        if target is None:
            return self._nothing_there()
        reason = self.revoker.protected.reason(target)
        if reason is not None:
            raise Protected(
                f"grant {target.id} ({_describe(target)}) was not deleted: {reason}",
                details={"grant_id": target.id},
            )
        locks = self.revoker.grant_locks
        if locks is None:
            return self._delete(request, target)
        try:
            with locks.hold(grant_key(target), wait_s=self.budget.remaining_s()) as held:
                return self._delete(request, target, held)
        except GrantBusy as exc:
            raise ReturnToQueue(str(exc), delay_s=GRANT_BUSY_DELAY_S) from exc

    def _look_up(self, request: GrantRequest) -> Grant | None:
        if request.grant_id is not None:
            try:
                return self.api.get_grant(request.grant_id)
            except NotFound:
                return None
        named = request.creates
        return pick(named, self.api.find_grants(**lookup_filters(named)))

    def _nothing_there(self) -> Revocation:
        if self.maybe_sent:
            log.info("revoke: the grant is gone after a DELETE whose reply was lost")
            return Revocation("revoked", None, self.attempts, resolved_by="lookup")
        return Revocation("absent", None, self.attempts)

    def _delete(
        self, request: GrantRequest, target: Grant, held: HeldGrant | None = None
    ) -> Revocation:
        try:
            return self._retrying(lambda: self._delete_once(request, target, held))
        except RetryableError:
            # About to end as network_error / upstream_error / rate_limited: a DELETE that may
            # have been applied is looked for once more.
            if self.maybe_sent and self._gone(request):
                return Revocation("revoked", target, self.attempts, resolved_by="lookup")
            raise

    def _delete_once(
        self, request: GrantRequest, target: Grant, held: HeldGrant | None
    ) -> Revocation:
        mark = SendMark(self.marker)
        self.carry(mark)

        def delete() -> None:
            self.api.delete_grant(target.id, before_send=mark.before_send)

        try:
            if held is None:
                delete()
            else:
                # Fenced: a DELETE whose reply is lost may still land, and the next writer of
                # this grant (a create after the revoke) must not be undone by it.
                held.renew()
                held.write(delete)
        except RetryableError as exc:
            if mark.sent and exc.ambiguous:
                self.maybe_sent = True
                mark.lost()
                if self._gone(request):
                    log.info("grant %s is gone after a lost DELETE reply", target.id)
                    return Revocation("revoked", target, self.attempts, resolved_by="lookup")
            else:
                mark.refused()
            raise
        except Auth0Error:
            mark.refused()
            raise
        mark.answered()
        log.info("grant %s revoked (%s)", target.id, _describe(target))
        return Revocation("revoked", target, self.attempts)

    def _gone(self, request: GrantRequest) -> bool:
        """After a lost reply: whether the grant is gone; False when the lookup fails too."""
        try:
            return self._look_up(request) is None
        except Auth0Error as exc:
            log.info("lookup after a lost DELETE reply failed too: %s", exc)
            return False


def _as_listed(request: GrantRequest) -> Grant | None:
    """The grant a request names by both id and key, as its sender listed it; None otherwise.

    The sender's listing stands in for the lookup: grant ids are never reused and a grant's
    owner, audience and subject type never change, so the protection rules hold on the key as
    they would on the looked-up grant (a system grant Auth0 refuses to delete by itself). The
    cost is that such a revoke cannot tell `absent` (deleted by someone else meanwhile) from
    `revoked`: DELETE answers 204 either way, and it says `revoked`.
    """
    if request.grant_id is None or request.grant is None:
        return None
    key = request.grant
    return Grant(
        id=request.grant_id,
        client_id=key.client_id,
        default_for=key.default_for,
        audience=key.audience,
        subject_type=key.effective_subject_type,
    )


def grant_key(grant: Grant) -> CreateClientGrant:
    """The uniqueness key of `grant`, as the grant locks name grants."""
    named = {"audience": grant.audience, "subject_type": grant.subject_type or "client"}
    if grant.client_id is not None:
        named["client_id"] = grant.client_id
    else:
        named["default_for"] = grant.default_for or "third_party_clients"
    return CreateClientGrant.model_validate(named, strict=False)


def _describe(grant: Grant) -> str:
    owner = grant.client_id or f"default_for {grant.default_for}"
    return f"{owner} on {grant.audience}, subject_type {grant.subject_type or 'client'}"


def _same_audience(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def protected_grants(settings: Settings) -> ProtectedGrants:
    """The grants no revoke of `settings`' worker deletes (`grants sync` plans with them too)."""
    uses_static_token = settings.auth0_token is not None or settings.auth0_token_file is not None
    own = None if uses_static_token else settings.auth0_client_id
    return ProtectedGrants(settings.management_audience, own)


def make_revoker(settings: Settings, flow: FlowParts, grant_locks: GrantLocks | None) -> Revoker:
    """The revoker for `settings`' tenant, sharing `flow` (the provisioner's pace, breaker,
    retry policy and API client) and its grant locks."""
    return Revoker(flow, protected_grants(settings), grant_locks=grant_locks)
