"""From a validated `GrantRequest` to a `Resolution`, or to an `Auth0Error` with `attempts`.

The story of one request:

1. POST the grant, retrying 429 / 5xx / 408 / network errors inside the one retry budget
   (`tasks.flow.retry_policy`); every Management API call (POST, GET, PATCH) first takes a slot
   of the fleet's pace (`tasks.flow.pace`), whose answers teach it the tenant's limit, and
   a 429 pauses the whole fleet. Waiting is never failing: time waited for a slot or a pause is
   given back to the budget, and a request whose slot is not near, whose 429 reset is far off,
   or that meets an open breaker (`tasks.flow.breaker`) goes back to the queue uncounted
   (`ReturnToQueue`). A tenant fault (refused credentials, missing scope, an outage) opens the
   fleet's breaker instead of failing the request.
2. 201 → `created`.
3. A create is "possibly ours" only when its reply was lost: a timeout or a dropped connection
   after sending, or a 5xx, in this delivery or an earlier one (`sent_before`, kept by the
   `SentMarker`). After such a loss the grant is looked up before anything else is sent, and
   once more before the request may end as `network_error` / `upstream_error`: a grant equal
   to the request is our own create, `created` (`resolved_by="lookup"`).
4. 409 → look the grant up and apply `on_conflict` (`tasks.conflicts`), except that a possibly
   ours create whose grant equals the request is `created` as above. A 409 after clean
   refusals only is someone else's grant: under `fail` it stays `conflict`, on any delivery.
   `merge` and `replace` read and PATCH under the grant's fleet-wide lock
   (`tasks.delivery.locks`), so concurrent updates never overwrite each other.
5. 409 but no such grant (deleted in between), or a PATCH on a vanished grant → create again,
   at most `max_conflict_recreates` times, then `ConflictUnresolved` (retryable).
"""

from __future__ import annotations

import logging
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import redis
import requests

from grant_worker.config.settings import Settings
from grant_worker.tasks import metrics
from grant_worker.tasks.auth0.api import ManagementApi, make_api
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.conflicts import (
    Mode,
    effective_mode,
    full_replace_patch,
    is_equal,
    lookup_filters,
    pick,
    plan,
)
from grant_worker.tasks.delivery.fences import WriteFences
from grant_worker.tasks.delivery.ledger import SendMark, SentMarker
from grant_worker.tasks.delivery.locks import GrantBusy, GrantLocks, HeldGrant
from grant_worker.tasks.errors import (
    Auth0Error,
    ConflictUnresolved,
    GrantConflict,
    NotFound,
    RetryableError,
    ReturnToQueue,
)
from grant_worker.tasks.flow.breaker import Breaker, make_breaker
from grant_worker.tasks.flow.pace import (
    FleetPace,
    make_pace,
)
from grant_worker.tasks.flow.retry_policy import (
    Random,
    RetryPolicy,
    backoff_s,
)
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import CreateClientGrant, Grant, GrantRequest
from grant_worker.tasks.paced_run import DEFAULT_SLOT_WAIT_S, PacedRun
from grant_worker.tasks.ride_along import RideAlong

log = logging.getLogger(__name__)
T = TypeVar("T")
# A request that finds its grant locked by another for its whole budget waits on the queue.
GRANT_BUSY_DELAY_S = 1.0


@dataclass(frozen=True)
class Resolution:
    """How a request ended well."""

    status: Literal["created", "exists", "updated"]
    grant: Grant
    # For `exists`: how the existing grant differs from the request (None when it does not);
    # None for `created` and `updated`.
    differences: dict[str, Any] | None
    # Management API calls made for this request: every POST, lookup page and PATCH, retries
    # included. Token requests are not counted: a token serves every request of the process.
    attempts: int
    # "lookup": a create whose reply was lost, found by a lookup equal to the request.
    resolved_by: Literal["lookup"] | None = None


class Provisioner:
    """Runs requests against one tenant. Thread-safe: one per worker process."""

    def __init__(
        self,
        api: ManagementApi,
        pace: FleetPace | None,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        epoch_clock: Callable[[], float] = time.time,
        random: Random = _random.random,
        grant_locks: GrantLocks | None = None,
        breaker: Breaker | None = None,
        slot_wait_s: float = DEFAULT_SLOT_WAIT_S,
    ) -> None:
        self.api = api
        self.pace = pace
        self.breaker = breaker
        self.slot_wait_s = slot_wait_s
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.epoch_clock = epoch_clock
        self.random = random
        self.grant_locks = grant_locks

    def provision(
        self,
        request: GrantRequest,
        *,
        sent_before: bool = False,
        marker: SentMarker | None = None,
        before_send: Callable[[], None] | None = None,
        later: RideAlong | None = None,
    ) -> Resolution:
        """Create the grant of `request`, or resolve its 409 under `request.on_conflict`.

        `sent_before`: an earlier delivery's create may have reached Auth0 unanswered.
        `marker` records what each POST did; `before_send` runs just before each POST.
        `later` takes the writes that may wait for the request's next round trip.
        Raises an `Auth0Error` subclass, with `attempts` set.
        """
        run = _Run(
            self, sent_before=sent_before, marker=marker, before_send=before_send, later=later
        )
        try:
            return run.provision(request)
        except Auth0Error as exc:
            exc.attempts = run.attempts
            raise


class _Run(PacedRun):
    """The state of one `provision` call: its budget, its call count, whether it may have sent."""

    owner: Provisioner

    def __init__(
        self,
        owner: Provisioner,
        *,
        sent_before: bool,
        marker: SentMarker | None,
        before_send: Callable[[], None] | None,
        later: RideAlong | None,
    ) -> None:
        super().__init__(owner, later=later)
        # True once a create of this request may have been applied without our seeing it.
        self.maybe_sent = sent_before
        # Whether a lookup has been made since the last ambiguous send.
        self.looked_up = not sent_before
        self.marker = marker
        self.before_send = before_send

    def provision(self, request: GrantRequest) -> Resolution:
        requested = request.creates
        if request.grant_id is not None:
            replaced = self._replace_listed(request)
            if replaced is not None:
                return replaced
        recreates = 0
        while True:
            try:
                return self._create(requested)
            except GrantConflict as conflict:
                resolution = self._resolve_conflict(request, conflict)
                if resolution is not None:
                    return resolution
                recreates = self._before_recreate(requested, recreates)

    def _replace_listed(self, request: GrantRequest) -> Resolution | None:
        """A replace naming the grant its sender just listed under the request's key: one PATCH
        that makes it equal to the request, instead of a POST, its 409, a lookup and the PATCH.
        None when the grant is gone (create it as usual). Under the grant's lock, as a 409's
        PATCH is."""
        locks = self.owner.grant_locks
        if locks is None:
            return self._patch_listed(request, None)
        try:
            with locks.hold(request.creates, wait_s=self.budget.remaining_s()) as held:
                return self._patch_listed(request, held)
        except GrantBusy as exc:
            raise ReturnToQueue(str(exc), delay_s=GRANT_BUSY_DELAY_S) from exc

    def _patch_listed(self, request: GrantRequest, held: HeldGrant | None) -> Resolution | None:
        grant_id = request.grant_id
        assert grant_id is not None
        patch = full_replace_patch(request.creates)

        def call() -> Grant:
            if held is None:
                return self.api.update_grant(grant_id, patch)
            held.renew()
            # Fenced as every PATCH is: a late one must not undo a later writer's.
            return held.write(lambda: self.api.update_grant(grant_id, patch))

        try:
            updated = self._retrying(call)
        except NotFound:
            return None
        if pick(request.creates, [updated]) is None:
            # Ids are never reused, so only a sender that named the wrong grant gets here.
            raise GrantConflict(
                f"grant {grant_id} is not the grant the request names "
                f"({request.creates.client_id or request.creates.default_for} on "
                f"{request.creates.audience}); it was PATCHed to the request's settings",
                http_status=409,
            )
        log.info("grant %s replaced as listed: %s", grant_id, sorted(patch))
        return Resolution("updated", updated, None, self.attempts)

    def _create(self, requested: CreateClientGrant) -> Resolution:
        body = requested.body()
        try:
            return self._retrying(lambda: self._create_once(requested, body))
        except RetryableError:
            # About to end as network_error / upstream_error / rate_limited: if a create may
            # have been applied since the last lookup, look once more.
            if self.maybe_sent and not self.looked_up:
                found = self._find_own(requested)
                if found is not None:
                    return found
            raise

    def _create_once(self, requested: CreateClientGrant, body: dict[str, Any]) -> Resolution:
        mark = SendMark(self.marker, then=self.before_send)
        self.carry(mark)
        try:
            grant = self.api.create_grant(body, before_send=mark.before_send)
        except RetryableError as exc:
            if mark.sent and exc.ambiguous:
                self.maybe_sent = True
                self.looked_up = False
                mark.lost()
                found = self._find_own(requested)
                if found is not None:
                    return found
            else:
                mark.refused()
            raise
        except Auth0Error:
            # A definite answer (409, 400, 404, ...): this send created nothing.
            mark.refused()
            raise
        mark.answered()
        return Resolution("created", grant, None, self.attempts)

    def _find_own(self, requested: CreateClientGrant) -> Resolution | None:
        """After a lost reply: the grant, if the lost create (or anyone) made it already.

        `created` when it equals the request; a `GrantConflict` (to be resolved under
        `on_conflict`) when a different grant is there; None when there is none yet, or the
        tenant did not answer the lookup either.
        """
        try:
            existing = pick(requested, self.api.find_grants(**lookup_filters(requested)))
        except Auth0Error as exc:
            log.info("lookup after a lost reply failed too: %s", exc)
            return None
        self.looked_up = True
        if existing is None:
            return None
        if is_equal(requested, existing):
            log.info("grant %s found equal to the request after a lost reply", existing.id)
            metrics.RESOLVED_BY_LOOKUP.inc()
            return Resolution("created", existing, None, self.attempts, resolved_by="lookup")
        raise GrantConflict(
            "a grant for "
            f"{requested.client_id or requested.default_for} on {requested.audience} "
            f"(subject_type {requested.effective_subject_type}) exists and differs from the "
            "request (found by a lookup after a lost reply)",
            http_status=409,
        )

    def _resolve_conflict(
        self, request: GrantRequest, conflict: GrantConflict
    ) -> Resolution | None:
        """The 409's resolution; None when the grant has vanished (create again)."""
        mode = effective_mode(request.on_conflict)
        if mode is None and not self.maybe_sent:
            raise conflict
        locks = self.owner.grant_locks
        if mode not in ("merge", "replace") or locks is None:
            return self._resolve(mode, request.creates, conflict, None)
        try:
            with locks.hold(request.creates, wait_s=self.budget.remaining_s()) as held:
                return self._resolve(mode, request.creates, conflict, held)
        except GrantBusy as exc:
            raise ReturnToQueue(str(exc), delay_s=GRANT_BUSY_DELAY_S) from exc

    def _resolve(
        self,
        mode: Mode | None,
        requested: CreateClientGrant,
        conflict: GrantConflict,
        held: HeldGrant | None,
    ) -> Resolution | None:
        """Apply `mode` to the existing grant (under `held`, renewed before each call)."""

        def locked(call: Callable[[], T], *, write: bool = False) -> Callable[[], T]:
            def run() -> T:
                if held is None:
                    return call()
                held.renew()
                return held.write(call) if write else call()

            return run

        filters = lookup_filters(requested)
        existing = self._retrying(locked(lambda: pick(requested, self.api.find_grants(**filters))))
        self.looked_up = True
        if existing is None:
            return None
        if self.maybe_sent and is_equal(requested, existing):
            log.info("grant %s is this request's own lost create", existing.id)
            metrics.RESOLVED_BY_LOOKUP.inc()
            return Resolution("created", existing, None, self.attempts, resolved_by="lookup")
        if mode is None:
            raise conflict
        decided = plan(mode, requested, existing)
        if decided.patch is None:
            log.info("grant %s exists (on_conflict %s)", existing.id, mode)
            return Resolution("exists", existing, decided.differences, self.attempts)
        patch = decided.patch
        try:
            updated = self._retrying(
                locked(lambda: self.api.update_grant(existing.id, patch), write=True)
            )
        except NotFound:
            return None
        log.info("grant %s updated (on_conflict %s): %s", existing.id, mode, sorted(patch))
        return Resolution("updated", updated, None, self.attempts)

    def _before_recreate(self, requested: CreateClientGrant, recreates: int) -> int:
        wait = backoff_s(self.policy, recreates + 1, self.owner.random)
        if recreates >= self.policy.max_conflict_recreates or not self.budget.allows_wait(wait):
            raise ConflictUnresolved(
                "409 Conflict, but no grant for "
                f"{requested.client_id or requested.default_for} on {requested.audience} "
                f"(subject_type {requested.effective_subject_type}) could be found or updated "
                f"after {recreates + 1} tries; it is being deleted and created concurrently?",
                http_status=409,
                ambiguous=False,
            )
        log.info("409 but the grant has vanished; creating again in %.2f s", wait)
        metrics.AUTH0_RETRIES.labels(reason="conflict_vanished").inc()
        self.owner.sleep(wait)
        return recreates + 1


def make_provisioner(
    settings: Settings,
    redis_client: redis.Redis,
    *,
    session: requests.Session | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Provisioner:
    """The provisioner for `settings`' tenant, sharing the fleet's pace, breaker and grant
    locks in Redis.

    `session` defaults to `make_session(settings)`; `policy` to the settings' retry budget;
    `sleep` is how a backoff waits (the worker's raises `ReturnToQueue` once it shuts down).
    Raises `ValueError` when AUTH0_DOMAIN or the credentials are missing.
    """
    api = make_api(settings, session if session is not None else make_session(settings))
    call_s = settings.grants_connect_timeout_s + settings.grants_read_timeout_s
    return Provisioner(
        api,
        # Naps for a slot end at SIGTERM too: the request goes back to the queue.
        make_pace(settings, redis_client, sleep=sleep),
        policy or RetryPolicy.from_settings(settings),
        sleep=sleep,
        grant_locks=GrantLocks(
            redis_client,
            Keys(settings.grants_key_prefix),
            # One call at a time: renewed before each, so a dead holder frees it in seconds.
            ttl_s=call_s + 5.0,
            # Armed before the fleet slot is taken: the send may come a slot wait later.
            fences=WriteFences(
                redis_client,
                landing_s=settings.grants_slot_wait_s + call_s + settings.grants_write_landing_s,
            ),
            sleep=sleep,
        ),
        breaker=make_breaker(settings, redis_client),
        slot_wait_s=settings.grants_slot_wait_s,
    )
