"""The worker's side of the fleet's breaker: stop taking messages while it is open, probe the
tenant for the fleet, and check the tenant once at start-up.

`BreakerWatch` runs in a thread of each worker process and looks at the breaker (`Keys.breaker`)
every `POLL_S`:

- open: the consumer stops taking messages from the queue (Celery's `cancel_task_queue`, run
  on the consumer's own event loop), so they stay queued; requests in flight finish their
  attempt and go back to the queue uncounted (`tasks.provision`). Whoever claims the fleet's
  probe (one process per interval, `Breaker.claim_probe`) re-reads the secret files, takes a
  new token, checks its scopes and lists one grant; success closes the breaker. A rewritten
  secret file makes the probe run at once.
- closed again: every process re-reads its secret files, forgets its cached token (the old
  one may be revoked or lack a scope) and resumes taking messages.

`check_tenant_at_start` is `grants worker`'s start-up check: refused credentials end the
process with exit code 2 and a clear message; a tenant that does not answer starts the worker
with the breaker open, so it drains as soon as the tenant is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.api import ManagementApi, make_api
from grant_worker.tasks.auth0.diagnosis import diagnose
from grant_worker.tasks.auth0.secrets import FileWatch, SecretFileError, watched_files
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.auth0.tokens import TokenCache
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.errors import Auth0Error
from grant_worker.tasks.flow.breaker import Breaker, make_breaker, show_gauge, tenant_fault
from grant_worker.worker.exit_codes import fail_usage

log = logging.getLogger(__name__)

POLL_S = 0.25
# The scope without which no request can be served (the others are needed only on a 409).
NEEDED_SCOPE = "create:client_grants"


class ProbeFailed(Exception):
    """Raised by `probe_tenant` with the breaker cause the tenant still shows."""

    def __init__(self, cause: str, message: str, error: Auth0Error | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message
        # The tenant's answer behind it, when there was one (for `diagnose`).
        self.error = error


def probe_tenant(api: ManagementApi) -> None:
    """Re-read the secret files, take a new token, check its scope, list one grant.

    Raises `ProbeFailed` naming the cause when the tenant still refuses or does not answer.
    """
    try:
        if api.secrets is not None:
            api.secrets.reload()
    except SecretFileError as exc:
        raise ProbeFailed("token_refused", str(exc)) from None
    tokens = api.tokens
    try:
        if isinstance(tokens, TokenCache):
            issued = api.fetch_token()
            if issued.scope is not None and NEEDED_SCOPE not in issued.scope.split():
                raise ProbeFailed(
                    "insufficient_scope", f"the worker's token lacks the scope {NEEDED_SCOPE}"
                )
            # The fleet's one token request of this probe serves this process from now on.
            tokens.replace(issued)
        api.probe()
    except Auth0Error as exc:
        raise ProbeFailed(tenant_fault(exc) or "unreachable", exc.message, exc) from None


class BreakerWatch:
    """Pauses and resumes one process's consumer with the fleet's breaker; probes for the fleet."""

    def __init__(
        self,
        breaker: Breaker,
        api: Callable[[], ManagementApi],
        *,
        pause_consuming: Callable[[], None],
        resume_consuming: Callable[[], None],
        files: FileWatch,
        poll_s: float = POLL_S,
    ) -> None:
        self._breaker = breaker
        # The process's client, resolved only when needed: building it is the handler's first
        # use, which belongs to the first request, not to the worker's start.
        self._api = api
        self._pause = pause_consuming
        self._resume = resume_consuming
        self._files = files
        self._poll_s = poll_s
        self._paused = False
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.check()
            except redis.RedisError as exc:
                log.debug("breaker watch: %s", type(exc).__name__)

    def check(self) -> None:
        state = self._breaker.state()
        file_changed = self._files.changed()
        if not state.is_open:
            if self._paused:
                self._paused = False
                self._refresh_credentials()
                show_gauge(None)
                self._resume()
            elif file_changed:
                self._refresh_credentials()
            return
        show_gauge(state.cause)
        if not self._paused:
            self._paused = True
            self._pause()
        if self._breaker.claim_probe(now=file_changed):
            self._probe()

    def _probe(self) -> None:
        try:
            probe_tenant(self._api())
        except ProbeFailed as exc:
            log.info("breaker probe: the tenant still refuses (%s): %s", exc.cause, exc.message)
            self._breaker.note_probe_failed(exc.cause, exc.message)
            return
        self._breaker.close()

    def _refresh_credentials(self) -> None:
        api = self._api()
        try:
            if api.secrets is not None:
                api.secrets.reload()
        except SecretFileError as exc:
            log.warning("%s", exc)
        if isinstance(api.tokens, TokenCache):
            api.tokens.forget()

    def stop(self) -> None:
        self._stop.set()


def make_breaker_watch(
    settings: Settings,
    handler: Callable[[], Any],
    *,
    pause_consuming: Callable[[], None],
    resume_consuming: Callable[[], None],
) -> BreakerWatch:
    """The `BreakerWatch` of a worker process whose task runs `handler`."""
    return BreakerWatch(
        make_breaker(settings, make_redis(settings)),
        # The handler's client: its token cache and secrets are what the probe refreshes.
        lambda: handler().provisioner.api,
        pause_consuming=pause_consuming,
        resume_consuming=resume_consuming,
        files=FileWatch(watched_files(settings)),
    )


def consumer_calls(worker: Any, queue: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """Pause / resume taking messages, run on the consumer's own loop (it is not thread-safe)."""

    def pause() -> None:
        consumer = worker.consumer
        consumer.call_soon(consumer.cancel_task_queue, queue)

    def resume() -> None:
        consumer = worker.consumer
        consumer.call_soon(consumer.add_task_queue, queue)

    return pause, resume


def check_tenant_at_start(settings: Settings, client: redis.Redis | None = None) -> None:
    """Take a token (or, with a static token, list one grant) before the worker starts.

    Refused credentials exit with code 2 and a message naming the setting to fix; a tenant
    that does not answer opens the fleet's breaker and lets the worker start.
    """
    try:
        api = make_api(settings, make_session(settings))
    except (SecretFileError, ValueError) as exc:
        _refuse(f"configuration: {exc}")
    try:
        probe_tenant(api)
    except ProbeFailed as exc:
        found = diagnose(exc.error, settings) if exc.error is not None else None
        if exc.cause in ("token_refused", "token_rejected"):
            fix = found.fix if found is not None else "check the Auth0 credentials"
            _refuse(f"the tenant refused the worker's credentials ({exc.message}); fix: {fix}")
        message = f"{found.detail}; fix: {found.fix}" if found is not None else exc.message
        breaker = make_breaker(settings, client or make_redis(settings))
        if not breaker.open(exc.cause, f"at start-up: {message}"):
            # Already open (another worker saw it first): this worker's reading still counts.
            log.warning("the fleet's breaker is open; at start-up: %s", message)


def _refuse(message: str) -> NoReturn:
    fail_usage(message)


__all__ = [
    "BreakerWatch",
    "ProbeFailed",
    "check_tenant_at_start",
    "consumer_calls",
    "make_breaker_watch",
    "probe_tenant",
]
