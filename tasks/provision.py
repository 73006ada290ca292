"""From a validated `GrantRequest` to a `Resolution`, or to an `Auth0Error` with `attempts`.

The story of one request:

1. POST the grant, retrying 429 / 5xx / 408 / network errors inside the one retry budget
   (`tasks.flow.retry_policy`); every HTTP call (token, POST, GET, PATCH) first takes a slot of the
   fleet's rate governor, and a 429 pauses the whole fleet until its reset.
2. 201 → `created`.
3. 409 → look the grant up and apply `on_conflict` (`tasks.conflicts`). The grant counts as
   ours, and `fail` resolves like `keep`, when an earlier delivery may have sent it
   (`sent_before`) or an earlier attempt of this call was ambiguous (5xx, read timeout,
   dropped connection after sending): a lost reply must never fail its own request, and the
   409 is what guarantees the grant is not created twice.
4. 409 but no such grant (deleted in between), or a PATCH on a vanished grant → create again,
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
from grant_worker.tasks.auth0.api import TOKEN, CallHooks, ManagementApi, make_api
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.conflicts import Mode, effective_mode, lookup_filters, pick, plan
from grant_worker.tasks.errors import (
    Auth0Error,
    ConflictUnresolved,
    GrantConflict,
    NotFound,
    RateLimited,
    RetryableError,
)
from grant_worker.tasks.flow.governor import Governor, SlotUnavailable, make_governor
from grant_worker.tasks.flow.retry_policy import (
    Budget,
    Random,
    RetryPolicy,
    backoff_s,
    call_with_retries,
)
from grant_worker.tasks.messages.models import CreateClientGrant, Grant, GrantRequest

log = logging.getLogger(__name__)
T = TypeVar("T")


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


class Provisioner:
    """Runs requests against one tenant. Thread-safe: one per worker process."""

    def __init__(
        self,
        api: ManagementApi,
        governor: Governor | None,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        epoch_clock: Callable[[], float] = time.time,
        random: Random = _random.random,
    ) -> None:
        self.api = api
        self.governor = governor
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.epoch_clock = epoch_clock
        self.random = random

    def provision(
        self,
        request: GrantRequest,
        *,
        sent_before: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> Resolution:
        """Create the grant of `request`, or resolve its 409 under `request.on_conflict`.

        `sent_before`: an earlier delivery may have created this grant. `before_send` runs
        just before each POST is sent. Raises an `Auth0Error` subclass, with `attempts` set.
        """
        run = _Run(self, sent_before=sent_before, before_send=before_send)
        try:
            return run.provision(request)
        except Auth0Error as exc:
            exc.attempts = run.attempts
            raise


class _Run:
    """The state of one `provision` call: its budget, its call count, whether it may have sent."""

    def __init__(
        self,
        owner: Provisioner,
        *,
        sent_before: bool,
        before_send: Callable[[], None] | None,
    ) -> None:
        self.owner = owner
        self.policy = owner.policy
        self.budget = Budget.starting_now(owner.policy.budget_s, owner.clock)
        self.attempts = 0
        self.maybe_sent = sent_before
        self.before_send = before_send
        self.api = owner.api.with_hooks(
            CallHooks(
                before_call=self._take_slot, on_call=self._count, time_left=self.budget.remaining_s
            )
        )

    def provision(self, request: GrantRequest) -> Resolution:
        requested = request.grant
        body = requested.body()
        recreates = 0
        while True:
            try:
                grant = self._create(body)
            except GrantConflict:
                mode = effective_mode(request.on_conflict, ours=self.maybe_sent)
                if mode is None:
                    raise
                resolution = self._resolve(mode, requested)
                if resolution is not None:
                    return resolution
                recreates = self._before_recreate(requested, recreates)
                continue
            return Resolution("created", grant, None, self.attempts)

    def _create(self, body: dict[str, Any]) -> Grant:
        sent = False

        def mark_sent() -> None:
            nonlocal sent
            sent = True
            if self.before_send is not None:
                self.before_send()

        def attempt() -> Grant:
            nonlocal sent
            sent = False
            try:
                return self.api.create_grant(body, before_send=mark_sent)
            except RetryableError as exc:
                if sent and exc.ambiguous:
                    self.maybe_sent = True
                raise

        return self._retrying(attempt)

    def _resolve(self, mode: Mode, requested: CreateClientGrant) -> Resolution | None:
        """Apply `mode` to the existing grant; None when the grant has vanished."""
        filters = lookup_filters(requested)
        existing = self._retrying(lambda: pick(requested, self.api.find_grants(**filters)))
        if existing is None:
            return None
        decided = plan(mode, requested, existing)
        if decided.patch is None:
            log.info("grant %s exists (on_conflict %s)", existing.id, mode)
            return Resolution("exists", existing, decided.differences, self.attempts)
        patch = decided.patch
        try:
            updated = self._retrying(lambda: self.api.update_grant(existing.id, patch))
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

    def _retrying(self, call: Callable[[], T]) -> T:
        def paced() -> T:
            try:
                return call()
            except RateLimited as exc:
                self._pause_fleet(exc)
                raise

        return call_with_retries(
            paced,
            policy=self.policy,
            budget=self.budget,
            sleep=self.owner.sleep,
            epoch_clock=self.owner.epoch_clock,
            random=self.owner.random,
            on_retry=self._on_retry,
        )

    def _pause_fleet(self, exc: RateLimited) -> None:
        """After Auth0's 429 that says when, hold every worker until then (capped)."""
        governor = self.owner.governor
        # Our own governor's refusal is no news, and /oauth/token has a limit of its own.
        if governor is None or exc.http_status != 429 or exc.endpoint == TOKEN:
            return
        now = self.owner.epoch_clock()
        if exc.retry_after_s is not None:
            until = now + exc.retry_after_s
        elif exc.reset_at_epoch_s is not None:
            until = exc.reset_at_epoch_s
        else:
            return
        until = min(until, now + self.policy.max_rate_limit_wait_s)
        if until > now:
            governor.pause_until(until)

    def _take_slot(self, endpoint: str) -> None:
        governor = self.owner.governor
        if governor is None:
            return
        try:
            governor.acquire(max_wait_s=self.budget.remaining_s())
        except SlotUnavailable as exc:
            raise RateLimited(
                f"{endpoint}: the fleet's rate limit (GRANTS_RATE_LIMIT) has no free slot "
                f"within the retry budget (next in {exc.wait_s:.2f} s)",
                retry_after_s=exc.wait_s,
                reset_at_epoch_s=None,
            ) from exc

    def _count(self, endpoint: str) -> None:
        if endpoint != TOKEN:
            self.attempts += 1

    def _on_retry(self, exc: BaseException, wait_s: float) -> None:
        reason = exc.code if isinstance(exc, Auth0Error) else type(exc).__name__
        metrics.AUTH0_RETRIES.labels(reason=reason).inc()
        log.info("retrying in %.2f s after: %s", wait_s, exc)


def make_provisioner(
    settings: Settings,
    redis_client: redis.Redis,
    *,
    session: requests.Session | None = None,
    policy: RetryPolicy | None = None,
) -> Provisioner:
    """The provisioner for `settings`' tenant, sharing the fleet's governor in `redis_client`.

    `session` defaults to `make_session(settings)`; `policy` to the settings' retry budget.
    Raises `ValueError` when AUTH0_DOMAIN or the credentials are missing.
    """
    api = make_api(settings, session if session is not None else make_session(settings))
    return Provisioner(
        api,
        make_governor(settings, redis_client),
        policy or RetryPolicy.from_settings(settings),
    )
