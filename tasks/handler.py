"""What happens to one delivered request: parse → decide → call → record.

Independent of Celery so that it reads as the whole story of a request and can be driven by the
Celery task, the intake bridge's tests, or anything else that hands over a raw request.
Every path ends in exactly one recorded outcome, or in the acknowledgement of a duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from grant_worker.tasks import metrics
from grant_worker.tasks.delivery.admission import Admissions
from grant_worker.tasks.delivery.ledger import DeliveryLedger
from grant_worker.tasks.delivery.locks import RequestLocks
from grant_worker.tasks.delivery.receipt import rejected_outcome
from grant_worker.tasks.delivery.shutdown import ShutdownSignal
from grant_worker.tasks.errors import (
    Auth0Error,
    GrantWorkerError,
    Protected,
    RequestInvalid,
    ReturnToQueue,
)
from grant_worker.tasks.events import log_outcome
from grant_worker.tasks.messages.decoding import safe_request_id
from grant_worker.tasks.messages.models import (
    ErrorInfo,
    GrantRequest,
    Outcome,
    Status,
    utc_timestamp,
)
from grant_worker.tasks.messages.validation import parse_request
from grant_worker.tasks.outcomes.claims import (
    Claim,
    RequestClaims,
    claim_parts,
    owner,
)
from grant_worker.tasks.outcomes.recorder import OutcomeRecorder
from grant_worker.tasks.provision import Provisioner, Resolution
from grant_worker.tasks.revoke import Revocation, Revoker
from grant_worker.tasks.ride_along import RideAlong

log = logging.getLogger(__name__)


@dataclass
class GrantHandler:
    """Turns one delivery into at most one recorded outcome."""

    provisioner: Provisioner
    revoker: Revoker
    recorder: OutcomeRecorder
    ledger: DeliveryLedger
    locks: RequestLocks
    max_deliveries: int
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Which request each request id belongs to (None: ids are not checked for reuse).
    claims: RequestClaims | None = None
    # Set once the worker is stopping: requests not yet begun go back to the queue.
    shutdown: ShutdownSignal | None = None
    # Reads the request's state and takes its lock and claim in one step (None: step by step).
    admissions: Admissions | None = None

    def handle(self, raw: Any, *, fallback_id: str) -> Outcome:
        """Work on `raw` (dict, JSON text or bytes); `fallback_id` is the Celery task id.

        Returns the outcome recorded for the request, possibly by an earlier delivery.
        Raises `redis.RedisError` (or `LockBusy`) when no outcome could be recorded: the caller
        must then leave the message to be delivered again. Raises `ReturnToQueue` (delivery
        not counted, nothing recorded) when the request must wait on the queue instead.

        The delivery was counted at receipt, by task id (`tasks.delivery.receipt`), and the
        poison decision made there; `fallback_id` is the key it was counted under.
        """
        started = time.monotonic()
        received_at = utc_timestamp(self.now())
        try:
            request = parse_request(raw)
        except RequestInvalid as exc:
            return self.reject(raw, fallback_id=fallback_id, error=exc, received_at=received_at)

        request_id = request.request_id or safe_request_id(fallback_id)
        # What claims the id for this request, and what its record keeps of it.
        claim_json, owned = claim_parts(request) if self.claims is not None else ("", "")
        admitted = self._admit(
            request_id, request, received_at, fallback_id, started, claim_json, owned
        )
        if admitted is not None:
            return admitted
        earlier = self._earlier_outcome(request_id, request)
        if earlier is not None:
            return earlier
        if self.shutdown is not None:
            try:
                self.shutdown.check()
            except ReturnToQueue:
                # Back to the queue unworked: not a delivery towards `poison`.
                self.ledger.uncount_delivery(fallback_id)
                raise
        with self.locks.hold(request_id):
            # Decided under the lock: of two different requests under one id, the first to
            # get here owns the id, whichever delivery comes when.
            claimed = self.claims.claim(request_id, request) if self.claims else None
            if claimed is not None:
                return self._reject_reused(request, request_id, claimed, received_at)
            # Checked again under the lock: a concurrent delivery may have just finished.
            earlier = self._earlier_outcome(request_id, request)
            if earlier is not None:
                return earlier
            outcome, written = self._work_and_record(
                request,
                request_id,
                received_at,
                delivery_id=fallback_id,
                sent_before=self.ledger.was_sent(request_id),
                owned=owned,
            )
        return self._finished(request_id, outcome, written, started)

    def _admit(
        self,
        request_id: str,
        request: GrantRequest,
        received_at: str,
        fallback_id: str,
        started: float,
        claim_json: str,
        owned: str,
    ) -> Outcome | None:
        """The plain case in one round trip (`tasks.delivery.admission`): the outcome, or None
        when the step-by-step path must decide (lock busy, id owned by another request,
        stopping, reads to be confirmed by a replica)."""
        if (
            self.admissions is None
            or self.recorder.confirms_reads
            or (self.shutdown is not None and self.shutdown.started)
        ):
            return None
        admission = self.admissions.admit(request_id, claim_json)
        if admission.state == "busy":
            return None
        if admission.state == "recorded":
            earlier_owner = owner(admission.record, admission.claim)
            if self.claims is not None and earlier_owner and not earlier_owner.owns(request):
                return None
            earlier = self.recorder.from_record(request_id, admission.record)
            if earlier is None:
                return None
            metrics.DUPLICATE_DELIVERIES.inc()
            log.info("request %s already has outcome %s; acknowledged", request_id, earlier.status)
            return earlier
        with self.locks.adopt(request_id, admission.token) as released:
            claimed = owner("", admission.claim)
            if claimed is not None and not claimed.owns(request):
                return self._reject_reused(request, request_id, claimed, received_at)
            # The lock is released by the recording script itself.
            outcome, written = self._work_and_record(
                request,
                request_id,
                received_at,
                delivery_id=fallback_id,
                sent_before=admission.sent is not None,
                owned=owned,
                release=admission.token,
                released=released,
            )
        return self._finished(request_id, outcome, written, started)

    def _finished(
        self, request_id: str, outcome: Outcome, written: bool, started: float
    ) -> Outcome:
        metrics.TASK_SECONDS.observe(time.monotonic() - started)
        if not written:
            return self.recorder.recorded(request_id) or outcome
        _count(outcome)
        return outcome

    def _earlier_outcome(self, request_id: str, request: GrantRequest) -> Outcome | None:
        """The outcome recorded for this very request; None when there is none, or when the
        id belongs to another request (decided under the lock)."""
        # Confirmed: behind Sentinel, a record seen on a demoted primary does not count.
        earlier = self.recorder.recorded(request_id, confirmed=True)
        if earlier is not None and self.claims and not self.claims.matches(request_id, request):
            return None
        if earlier is not None:
            metrics.DUPLICATE_DELIVERIES.inc()
            log.info("request %s already has outcome %s; acknowledged", request_id, earlier.status)
        return earlier

    def _work_and_record(
        self,
        request: GrantRequest,
        request_id: str,
        received_at: str,
        *,
        delivery_id: str,
        sent_before: bool,
        owned: str,
        release: bytes | None = None,
        released: Callable[[], None] | None = None,
    ) -> tuple[Outcome, bool]:
        """Under the request lock, past the claim check (the claim on the id is this request's
        own, `owned` its fingerprint): the request's story and its record, which carries what
        the story queued (`tasks.ride_along`). Returns the outcome and whether it was written."""
        later = self.recorder.ride_along()
        outcome = self._work(
            request,
            request_id,
            received_at,
            delivery_id=delivery_id,
            sent_before=sent_before,
            later=later,
        )
        written = self.recorder.record(
            outcome,
            original=request.wire(),
            release=release,
            released=released,
            later=later,
            fingerprint=owned,
        )
        return outcome, written

    def _work(
        self,
        request: GrantRequest,
        request_id: str,
        received_at: str,
        *,
        delivery_id: str,
        sent_before: bool,
        later: RideAlong,
    ) -> Outcome:
        """The request's story against the tenant, ended in the outcome to record. `later`
        holds the writes that go with that record; on any other end they are sent here."""
        marker = self.ledger.marker(request_id, recorded_next=True)
        done: Resolution | Revocation
        try:
            if request.action == "revoke":
                done = self.revoker.revoke(
                    request, sent_before=sent_before, marker=marker, later=later
                )
            else:
                done = self.provisioner.provision(
                    request, sent_before=sent_before, marker=marker, later=later
                )
        except ReturnToQueue:
            # Going back to the queue is not a delivery that failed: it must not bring the
            # request closer to `poison`. Counted at receipt under the task id.
            self.ledger.uncount_delivery(delivery_id, later=later)
            raise
        except Protected as exc:
            # Refused by the worker itself, nothing deleted: the request, not Auth0, is wrong.
            return self._outcome(
                request,
                request_id,
                "rejected",
                received_at,
                error=exc.to_error_info(),
                attempts=exc.attempts,
            )
        except Auth0Error as exc:
            attempts = int(getattr(exc, "attempts", 0))
            return self._outcome(
                request,
                request_id,
                "failed",
                received_at,
                error=exc.to_error_info(),
                attempts=attempts,
            )
        except BaseException:
            # Nothing is recorded after this: what the story queued goes on its own.
            later.flush(quiet=True)
            raise
        return self._outcome(
            request,
            request_id,
            done.status,
            received_at,
            grant=done.grant.wire() if done.grant is not None else None,
            differences=done.differences if isinstance(done, Resolution) else None,
            attempts=done.attempts,
            resolved_by=done.resolved_by,
        )

    def _reject_reused(
        self, request: GrantRequest, request_id: str, earlier: Claim, received_at: str
    ) -> Outcome:
        """`rejected` / `request_id_reused` on the results and dead streams; the id's record
        (or its claim, while the earlier request is in flight) stays the earlier request's."""
        recorded = self.recorder.recorded(request_id)
        # Once recorded, only the fingerprint of the earlier request is kept: its outcome's
        # grant tells people what it was.
        earlier = earlier.described_by(recorded)
        what = earlier.describe()
        ended = (
            f"it ended {recorded.status}" + (f" ({recorded.error.code})" if recorded.error else "")
            if recorded is not None
            else "it has no outcome yet"
        )
        error = ErrorInfo(
            code="request_id_reused",
            message=(
                f"request id {request_id} was already used for a different request"
                + (f" ({what})" if what else "")
                + f"; {ended}. Nothing was sent: give this request an id of its own"
            ),
            details={
                "earlier_request": earlier.request,
                "earlier_status": recorded.status if recorded is not None else None,
            },
        )
        outcome = self._outcome(request, request_id, "rejected", received_at, error=error)
        self.recorder.publish(outcome, original=request.wire())
        log.warning("request %s: id reused for a different request; rejected", request_id)
        _count(outcome)
        return outcome

    def reject(
        self,
        raw: Any,
        *,
        fallback_id: str,
        error: GrantWorkerError,
        received_at: str | None = None,
    ) -> Outcome:
        """Record a `rejected` outcome for input that could not be used; nothing is sent."""
        outcome = rejected_outcome(
            raw,
            fallback_id=fallback_id,
            error=error,
            received_at=received_at or utc_timestamp(self.now()),
        )
        if self.recorder.record(outcome, original=_printable(raw)):
            _count(outcome)
            return outcome
        return self.recorder.recorded(outcome.request_id) or outcome

    def _outcome(
        self,
        request: GrantRequest,
        request_id: str,
        status: Status,
        received_at: str,
        *,
        grant: dict[str, Any] | None = None,
        error: ErrorInfo | None = None,
        differences: dict[str, Any] | None = None,
        attempts: int = 0,
        resolved_by: Literal["lookup"] | None = None,
    ) -> Outcome:
        return Outcome(
            request_id=request_id,
            batch_id=request.batch_id,
            status=status,
            grant=grant,
            error=error,
            differences=differences,
            attempts=attempts,
            received_at=received_at,
            finished_at=utc_timestamp(self.now()),
            metadata=request.metadata,
            resolved_by=resolved_by,
        )


def _printable(raw: Any) -> Any:
    """The original request as the dead stream keeps it: JSON where it was JSON, else text."""
    if isinstance(raw, bytes | bytearray):
        return bytes(raw).decode("utf-8", errors="backslashreplace")
    return raw


def _count(outcome: Outcome) -> None:
    metrics.count_outcome(outcome)
    log_outcome(outcome)
