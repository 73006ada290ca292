"""The fleet-wide circuit breaker for tenant faults, kept in one Redis hash (`Keys.breaker`).

A fault of the tenant or of the deployment is not a fault of each request: a refused secret, a
revoked grant, a missing scope or an outage would otherwise fail the whole backlog one message
at a time. The breaker opens on (`tenant_fault`):

| cause                | what was seen                                                        |
|----------------------|----------------------------------------------------------------------|
| `token_refused`      | /oauth/token answered 401 or 403 (access_denied, invalid_client,      |
|                      | unauthorized_client: wrong secret, no Management API grant)          |
| `token_rejected`     | a Management API 401 although the token was just fetched (or static) |
| `insufficient_scope` | a Management API 403 `insufficient_scope`                            |
| `unreachable`        | `GRANTS_BREAKER_FAILURES` 5xx / timeouts / connection errors in a    |
|                      | row across the fleet, spanning at least `GRANTS_BREAKER_SPAN_S`, or   |
|                      | a request's whole retry budget spent on them with no answer in the   |
|                      | fleet meanwhile (so an outage never fails a request)                 |

While it is open no worker takes messages (`worker.process.breaker_watch`), requests in flight go
back to the queue uncounted, and one process of the fleet at a time probes the tenant: first after 1
s, then 2, 4, 8 and at most `GRANTS_BREAKER_MAX_PROBE_S` apart, or at once when a secret file
changes. A probe that succeeds closes it. Every change of state is made by one Lua script
(`lua/breaker_*.lua`), and only the process whose script changed it logs it, once, at ERROR, naming
the cause (never a secret).

The hash is a contract (`grants status`, the dashboard): `state` (closed | open), `cause`,
`since` and `next_probe_at` (epoch seconds); `read_breaker` reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks import metrics
from grant_worker.tasks.errors import (
    Auth0Error,
    Forbidden,
    NetworkError,
    Unauthorized,
    UpstreamError,
)
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.scripts import register

log = logging.getLogger(__name__)

CAUSES = ("token_refused", "token_rejected", "insufficient_scope", "unreachable")
FIRST_PROBE_AFTER_S = 1.0
TOKEN_ENDPOINT = "token"  # tasks.auth0.api.TOKEN, without importing the client here


@dataclass(frozen=True)
class BreakerState:
    """The breaker as stored; a fleet that never opened it reads as closed. `recorded`: the
    hash holds anything at all (a failure streak counts), which the dashboard tells apart from
    a fleet that never wrote one."""

    state: str
    cause: str | None
    since: float | None
    next_probe_at: float | None
    message: str | None = None
    recorded: bool = False

    @property
    def is_open(self) -> bool:
        return self.state == "open"


def read_breaker(client: redis.Redis, keys: Keys) -> BreakerState:
    """A pure read of the fleet's breaker (closed when nothing is stored)."""
    # HGETALL: the hash is a handful of fields, and an empty answer means "never written".
    fields = {
        _text(k): _text(v) for k, v in cast(dict[Any, Any], client.hgetall(keys.breaker)).items()
    }
    since, next_probe = fields.get("since"), fields.get("next_probe_at")
    return BreakerState(
        state=fields.get("state") or "closed",
        cause=fields.get("cause") or None,
        since=float(since) if since else None,
        next_probe_at=float(next_probe) if next_probe else None,
        message=fields.get("message") or None,
        recorded=bool(fields),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def tenant_fault(exc: Auth0Error) -> str | None:
    """The breaker cause `exc` shows, or None when it concerns the request alone.

    5xx and network errors are not tenant faults one by one: `Breaker.note_failure` counts them.
    """
    if exc.endpoint == TOKEN_ENDPOINT:
        if isinstance(exc, Unauthorized | Forbidden):
            return "token_refused"
        return None
    if isinstance(exc, Unauthorized):
        return "token_rejected"
    if isinstance(exc, Forbidden) and exc.auth0_error_code == "insufficient_scope":
        return "insufficient_scope"
    return None


def is_outage_error(exc: Auth0Error) -> bool:
    """A failure that, sustained across the fleet, means the tenant is unreachable."""
    if isinstance(exc, NetworkError):
        return True
    # A 2xx that cannot be read (no status on the error) is the tenant answering, not an outage.
    return isinstance(exc, UpstreamError) and exc.http_status is not None and exc.http_status >= 500


class Breaker:
    """The fleet's breaker. Thread-safe (one Redis call per operation)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        failures: int = 5,
        span_s: float = 1.0,
        max_probe_s: float = 10.0,
    ) -> None:
        self._client = client
        self._keys = keys
        self._failures = failures
        self._span_s = span_s
        self._max_probe_s = max_probe_s
        self._open = register(client, __package__, "breaker_open.lua")
        self._close = register(client, __package__, "breaker_close.lua")
        self._claim = register(client, __package__, "breaker_claim_probe.lua")
        self._failure = register(client, __package__, "breaker_failure.lua")
        self._exhausted = register(client, __package__, "breaker_exhausted.lua")

    def state(self) -> BreakerState:
        return read_breaker(self._client, self._keys)

    def is_open(self) -> bool:
        return self._client.hget(self._keys.breaker, "state") in ("open", b"open")

    def open(self, cause: str, message: str) -> bool:
        """Open for `cause` (see `CAUSES`); True (and one ERROR line) when this opened it."""
        opened = bool(
            self._open(keys=[self._keys.breaker], args=[cause, FIRST_PROBE_AFTER_S, message[:300]])
        )
        if opened:
            self._log_open(cause, message)
        return opened

    def note_failure(self, message: str) -> bool:
        """Count one 5xx / timeout / connection error; True when the breaker is open now."""
        result = int(
            self._failure(
                keys=[self._keys.breaker, self._keys.pace],
                args=[self._failures, self._span_s, FIRST_PROBE_AFTER_S, message[:300]],
            )
        )
        if result == 1:
            self._log_open("unreachable", message)
        return result > 0

    def note_exhausted(self, failures: int, message: str) -> bool:
        """A request's whole budget went on `failures` outage errors in a row; True when the
        breaker is open now (the fleet saw no answer meanwhile: the outage is sustained)."""
        result = int(
            self._exhausted(
                keys=[self._keys.breaker, self._keys.pace],
                args=[failures, FIRST_PROBE_AFTER_S, message[:300]],
            )
        )
        if result == 1:
            self._log_open("unreachable", message)
        return result > 0

    def claim_probe(self, *, now: bool = False) -> bool:
        """True when the caller is the fleet's one prober for this interval."""
        return bool(
            self._claim(keys=[self._keys.breaker], args=[self._max_probe_s, "1" if now else "0"])
        )

    def note_probe_failed(self, cause: str, message: str) -> None:
        """Keep the breaker open, naming what the last probe saw (the cause may move on, e.g.
        from `token_refused` to `insufficient_scope` once the secret is fixed)."""
        if self.is_open():
            self._client.hset(
                self._keys.breaker, mapping={"cause": cause, "message": message[:300]}
            )

    def close(self) -> bool:
        """Close after a successful probe; True (and one WARNING line) when this closed it."""
        closed, open_s, cause = self._close(keys=[self._keys.breaker])
        if int(closed):
            cause_text = cause.decode() if isinstance(cause, bytes) else str(cause)
            # A recovery, not a fault: below ERROR so error alerts do not fire on it, yet at
            # WARNING so a log filtered to WARNING shows the close beside its OPEN line.
            log.warning(
                "circuit breaker CLOSED after %.1f s (cause was %s): the tenant answers again, "
                "workers take messages",
                float(open_s),
                cause_text,
            )
            show_gauge(None)
        return bool(int(closed))

    def _log_open(self, cause: str, message: str) -> None:
        log.error(
            "circuit breaker OPEN, cause %s: %s; workers take no messages until a probe succeeds",
            cause,
            message,
        )
        show_gauge(cause)


def show_gauge(cause: str | None) -> None:
    """grants_breaker_open{cause}: 1 for the open cause, 0 for every other."""
    for known in CAUSES:
        metrics.BREAKER_OPEN.labels(cause=known).set(1 if known == cause else 0)


def make_breaker(settings: Settings, client: redis.Redis) -> Breaker:
    return Breaker(
        client,
        Keys(settings.grants_key_prefix),
        failures=settings.grants_breaker_failures,
        span_s=settings.grants_breaker_span_s,
        max_probe_s=settings.grants_breaker_max_probe_s,
    )
