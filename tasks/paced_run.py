"""One request's Management API calls under the fleet's flow control (any action's run).

Every call first takes a slot of the fleet's pace (`tasks.flow.pace`) and its answer teaches
the pace the tenant's limit; a 429 pauses the whole fleet; retries stay inside the request's one
budget (`tasks.flow.retry_policy`), and waiting for a slot or a pause is given back to it. A
tenant fault (refused credentials, missing scope, an outage) opens the fleet's breaker
(`tasks.flow.breaker`) and sends the request back to the queue uncounted (`ReturnToQueue`)
instead of failing it. `tasks.provision` (creates) and `tasks.revoke` (deletes) build their
stories on `PacedRun`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from grant_worker.tasks import metrics
from grant_worker.tasks.auth0.api import TOKEN, CallHooks, ManagementApi
from grant_worker.tasks.delivery.ledger import SendMark
from grant_worker.tasks.errors import Auth0Error, RateLimited, ReturnToQueue
from grant_worker.tasks.flow import pacing
from grant_worker.tasks.flow.breaker import Breaker, is_outage_error, tenant_fault
from grant_worker.tasks.flow.pace import BreakerIsOpen, FleetPace, SlotUnavailable
from grant_worker.tasks.flow.retry_policy import Budget, Random, RetryPolicy, call_with_retries
from grant_worker.tasks.ride_along import RideAlong

log = logging.getLogger(__name__)
T = TypeVar("T")

# A request whose fleet slot is further off than this goes back to the queue (GRANTS_SLOT_WAIT_S).
DEFAULT_SLOT_WAIT_S = 5.0
# How long a request sent back by an open breaker waits before it may be taken again (its
# worker stops taking messages meanwhile; this only keeps the message from spinning).
BREAKER_RETURN_DELAY_S = 1.0
# A request behind a far reset comes back at least this often (a message held longer than the
# visibility timeout would be delivered twice); the fleet's pause still holds it then.
MAX_RETURN_DELAY_S = 30.0
# At most one log line a minute about nonsensical reset headers, per process.
_ABSURD_RESET_LOG_EVERY_S = 60.0
_absurd_reset_logged_at = -_ABSURD_RESET_LOG_EVERY_S


class FlowParts(Protocol):
    """What a run shares with every other run of its process (the provisioner holds them)."""

    api: ManagementApi
    pace: FleetPace | None
    breaker: Breaker | None
    policy: RetryPolicy
    slot_wait_s: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    epoch_clock: Callable[[], float]
    random: Random


class PacedRun:
    """The state of one request's calls: its budget, its call count, its fleet slot."""

    def __init__(self, owner: FlowParts, *, later: RideAlong | None = None) -> None:
        self.owner = owner
        # The request's writes that may wait for its next round trip (the pace's lessons).
        self.later = later
        # The sent mark the next call's slot makes in the same step (`carry`).
        self._carried: SendMark | None = None
        self.policy = owner.policy
        self.budget = Budget.starting_now(owner.policy.budget_s, owner.clock)
        self.attempts = 0
        # The fleet slot of the call in progress (its answer teaches the fleet the tenant's limit).
        self.slot_seq = 0
        # Outage errors (5xx, timeouts, dropped connections) in a row in this request.
        self.outage_failures = 0
        self.api = owner.api.with_hooks(
            CallHooks(
                before_call=self._take_slot,
                on_call=self._count,
                time_left=self.budget.remaining_s,
                on_response=self._observe,
            )
        )

    def _retrying(self, call: Callable[[], T]) -> T:
        def paced() -> T:
            try:
                return call()
            except RateLimited as exc:
                self.outage_failures = 0
                self._pause_fleet(exc)
                raise
            except Auth0Error as exc:
                self._check_tenant(exc)
                raise

        try:
            return call_with_retries(
                paced,
                policy=self.policy,
                budget=self.budget,
                sleep=self.owner.sleep,
                epoch_clock=self.owner.epoch_clock,
                random=self.owner.random,
                on_retry=self._on_retry,
                fleet_paces_429=self.owner.pace is not None,
            )
        except Auth0Error as exc:
            self._check_outage_outlasted_budget(exc)
            raise

    def _check_outage_outlasted_budget(self, exc: Auth0Error) -> None:
        """The budget ran out on an outage the whole fleet sees: wait for it on the queue."""
        breaker = self.owner.breaker
        if breaker is None or not is_outage_error(exc) or self.outage_failures == 0:
            return
        self._send_lessons()
        if breaker.note_exhausted(self.outage_failures, exc.message):
            raise ReturnToQueue(
                f"the fleet's breaker is open (unreachable): {exc.message}",
                delay_s=BREAKER_RETURN_DELAY_S,
            ) from exc

    def _send_lessons(self) -> None:
        # Before the breaker's own writes: a lesson notes when its answer came, which ends a
        # failure streak. Sent after a later failure was counted, it would end the streak that
        # failure starts.
        if self.later is not None:
            self.later.flush()

    def _check_tenant(self, exc: Auth0Error) -> None:
        """A tenant fault opens the fleet's breaker and sends this request back to the queue."""
        breaker = self.owner.breaker
        if breaker is None:
            return
        cause = tenant_fault(exc)
        outage = is_outage_error(exc)
        self.outage_failures = self.outage_failures + 1 if outage else 0
        if cause is None and not outage:
            return
        self._send_lessons()
        if cause is not None:
            breaker.open(cause, exc.message)
        elif not breaker.note_failure(exc.message):
            return
        raise ReturnToQueue(
            f"the fleet's breaker is open ({cause or 'unreachable'}): {exc.message}",
            delay_s=BREAKER_RETURN_DELAY_S,
        ) from exc

    def _pause_fleet(self, exc: RateLimited) -> None:
        """After Auth0's own 429, hold every worker until its reset (or our own backoff).

        A reset further off than GRANTS_SLOT_WAIT_S sends this request back to the queue.
        """
        pace = self.owner.pace
        # /oauth/token has a limit of its own: its 429 says nothing about the Management API.
        if pace is None or exc.http_status != 429 or exc.endpoint == TOKEN:
            return
        now = self.owner.epoch_clock()
        reset = pacing.classify_reset(exc.reset_at_epoch_s, now)
        until, told = pacing.pause_after_429(reset, exc.retry_after_s, now)
        if not told and reset.kind != "absent":
            _log_absurd_reset(reset.kind, exc.reset_at_epoch_s)
        pace.pause_until(until, later=self.later)
        if until - now > self.owner.slot_wait_s:
            raise ReturnToQueue(
                f"429 from Auth0; the rate limit resets in {until - now:.0f} s",
                delay_s=min(until - now, MAX_RETURN_DELAY_S),
            ) from exc

    def carry(self, mark: SendMark) -> None:
        """The next Management API call's slot also makes `mark`'s mark, in the same round
        trip; where it cannot (pacing off), the mark is made as the call goes."""
        self._carried = mark

    def _take_slot(self, endpoint: str) -> None:
        pace = self.owner.pace
        breaker = self.owner.breaker
        if endpoint == TOKEN or pace is None:
            # Auth0 limits /oauth/token apart from the Management API: no slot, but no token
            # request either while the breaker is open (the probe asks for the fleet).
            if breaker is not None and breaker.is_open():
                raise ReturnToQueue("the fleet's breaker is open", delay_s=BREAKER_RETURN_DELAY_S)
            return
        mark, self._carried = self._carried, None
        ahead = mark.ahead() if mark is not None else None
        try:
            slot = pace.acquire(max_wait_s=self.owner.slot_wait_s, later=self.later, set_once=ahead)
        except BreakerIsOpen:
            raise ReturnToQueue(
                "the fleet's breaker is open", delay_s=BREAKER_RETURN_DELAY_S
            ) from None
        except SlotUnavailable as exc:
            # The model's wait is an estimate that the next answer may shorten: come back
            # after at most another slot wait, not after the whole estimate.
            raise ReturnToQueue(
                f"{endpoint}: no fleet slot within {self.owner.slot_wait_s:g} s "
                f"(next in {exc.wait_s:.1f} s)",
                delay_s=min(exc.wait_s, self.owner.slot_wait_s),
            ) from exc
        self.slot_seq = slot.seq
        if mark is not None and slot.set_once is not None:
            mark.made_ahead(slot.set_once)
        # Waiting for the fleet is not retrying: give the time back to the budget.
        self.budget.extend(slot.waited_s)

    def _observe(self, endpoint: str, status: int, headers: Mapping[str, str]) -> None:
        pace = self.owner.pace
        if pace is None or endpoint == TOKEN:
            return
        pace.observe(self.slot_seq, status, headers, later=self.later)

    def _count(self, endpoint: str) -> None:
        if endpoint != TOKEN:
            self.attempts += 1

    def _on_retry(self, exc: BaseException, wait_s: float) -> None:
        reason = exc.code if isinstance(exc, Auth0Error) else type(exc).__name__
        metrics.AUTH0_RETRIES.labels(reason=reason).inc()
        log.info("retrying in %.2f s after: %s", wait_s, exc)


def _log_absurd_reset(kind: str, value: float | None) -> None:
    global _absurd_reset_logged_at
    now = time.monotonic()
    if now - _absurd_reset_logged_at < _ABSURD_RESET_LOG_EVERY_S:
        return
    _absurd_reset_logged_at = now
    log.warning(
        "429 with x-ratelimit-reset %r (%s): treated as unknown; the fleet backs off %.1f s on "
        "its own schedule",
        value,
        kind.replace("_", " "),
        pacing.OWN_BACKOFF_S,
    )
