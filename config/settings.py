"""Typed settings for every process of grant-worker.

Sources, highest priority first: keyword arguments (tests, the demo), environment variables,
a `.env` file in the working directory, then the defaults below. `Settings` is read once at the
entry point (`grants …`, `celery -A grant_worker.worker.app`) and passed down; nothing reads the
environment at import time.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self, overload
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

log = logging.getLogger(__name__)

# A task may outlive its retry budget by one in-flight HTTP call plus bookkeeping; the hard time
# limit and the visibility timeout are derived from the budget with these margins so that a
# message is never redelivered while the first delivery is still working on it.
SOFT_LIMIT_MARGIN_S = 2.0
HARD_LIMIT_MARGIN_S = 5.0
VISIBILITY_MARGIN_S = 5.0
# Threads per worker process: beyond this, one process's share of the tenant's rate is too
# thin for its threads to be anything but idle.
MAX_CONCURRENCY = 256


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Configuration by environment variable; each one is documented in docs/settings.md."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    redis_url: SecretStr = Field(default=SecretStr("redis://localhost:6379/0"))
    auth0_domain: str = ""
    auth0_client_id: str | None = None
    auth0_client_secret: SecretStr | None = None
    auth0_token: SecretStr | None = None
    auth0_audience: str | None = None

    grants_queue: str = Field(default="grants", min_length=1)
    grants_key_prefix: str = "grants:"
    grants_concurrency: int = Field(default=8, ge=1, le=MAX_CONCURRENCY)
    # How fast the fleet calls the Management API, shared by every worker process through
    # Redis: "auto" learns the tenant's free rate from its x-ratelimit-* headers; a number is
    # an explicit ceiling (calls/s) on top of that; 0 turns pacing off (429s still pause).
    grants_rate_limit: Literal["auto"] | float = Field(default="auto")
    grants_rate_burst: int = Field(default=10, ge=1)
    grants_retry_budget_s: float = Field(default=60.0, gt=0)
    grants_max_deliveries: int = Field(default=5, ge=1)
    # None: derived from the retry budget (see `visibility_timeout_s`).
    grants_visibility_timeout: float | None = Field(default=None, gt=0)
    # How often a worker looks for messages whose visibility timeout ran out (kombu's
    # restore of unacknowledged messages); bounds the recovery time after a crash.
    grants_restore_interval_s: float = Field(default=5.0, gt=0)
    # A worker whose queue has waited this long while it had room and took nothing is
    # declared stalled and exits for its supervisor to restart it (0 turns the watchdog off).
    grants_stall_after_s: float = Field(default=60.0, ge=0)
    grants_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    grants_connect_timeout_s: float = Field(default=3.05, gt=0)
    grants_read_timeout_s: float = Field(default=15.0, gt=0)
    # How long after its client gave up (both timeouts) a write to a grant may still be carried
    # out by the tenant: the grant stays fenced that long after a PATCH whose reply was lost.
    grants_write_landing_s: float = Field(default=30.0, ge=0)
    # How long a per-request outcome record is kept for deduplicating redeliveries and replays.
    grants_record_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    # Approximate cap on the results / dead streams (XADD MAXLEN ~); 0 keeps everything.
    grants_stream_maxlen: int = Field(default=1_000_000, ge=0)
    # How often `grants bulk` prints a progress line when its output is not a terminal.
    grants_progress_interval_s: float = Field(default=5.0, gt=0)
    # After SIGTERM: how long calls already sent may finish; what is still unanswered then is
    # returned to the queue (marked possibly sent) and the worker exits 0. Keep the
    # supervisor's grace above it (compose stop_grace_period, Kubernetes
    # terminationGracePeriodSeconds).
    grants_shutdown_grace_s: float = Field(default=20.0, ge=0)
    # How often a worker writes its heartbeat, and after how long without one it counts as
    # dead: the surviving workers then put its unacknowledged messages back on the queue.
    grants_heartbeat_interval_s: float = Field(default=2.0, gt=0)
    grants_heartbeat_ttl_s: float = Field(default=10.0, gt=0)
    # Required by `grants dashboard` on any address but loopback; every visitor then logs in.
    grants_dashboard_token: SecretStr | None = None
    # A dashboard session ends after this long without a request (and after 12 h in any case).
    grants_dashboard_idle_s: int = Field(default=1800, ge=60, le=12 * 3600)
    # Comma-separated addresses of TLS-terminating proxies whose X-Forwarded-For/-Proto the
    # dashboard believes ("*": any); with one set, its cookie is sent only over HTTPS.
    grants_dashboard_trusted_proxies: str = ""

    # Operations. Logs: json or text; unset, JSON unless stderr is a terminal.
    grants_log_format: Literal["json", "text"] | None = None
    grants_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Celery task events (task-received, -started, -succeeded, ...) for Flower and `celery
    # events`: off by default, as each is one more Redis publish per task state.
    grants_task_events: bool = False
    # Several workers on one host: each takes the first free port of
    # GRANTS_METRICS_PORT … GRANTS_METRICS_PORT + count - 1.
    grants_metrics_port_count: int = Field(default=1, ge=1, le=1000)
    # Host names (comma-separated) to which AUTH0_DOMAIN may be plain http besides loopback:
    # for the compose file's emulator service only. Never a real tenant.
    grants_insecure_http_hosts: str = ""

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_a_redis_url(cls, value: SecretStr) -> SecretStr:
        problem = redis_url_problem(value.get_secret_value())
        if problem:
            # The message never repeats the URL: it may carry a password.
            raise ValueError(problem)
        return value

    # -- flow control ---------------------------------------------------------------------------
    # Secrets from mounted files (Docker / Kubernetes secrets), re-read when the breaker probes.
    auth0_client_secret_file: str | None = None
    auth0_token_file: str | None = None
    # A request that cannot get a fleet slot within this many seconds goes back to the queue.
    grants_slot_wait_s: float = Field(default=5.0, gt=0)
    # Sustained faults that open the fleet's breaker: this many 5xx / timeouts / connection
    # errors in a row across the fleet, spanning at least `grants_breaker_span_s`.
    grants_breaker_failures: int = Field(default=5, ge=1)
    grants_breaker_span_s: float = Field(default=1.0, ge=0)
    # Longest wait between two probes of an open breaker (they start at 1 s and double).
    grants_breaker_max_probe_s: float = Field(default=10.0, gt=0)

    @field_validator("grants_rate_limit", mode="before")
    @classmethod
    def _rate_is_auto_or_a_number(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "auto":
                return "auto"
            try:
                value = float(text)
            except ValueError:
                raise ValueError('must be "auto" or a number of calls per second') from None
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ValueError("must not be negative (0 turns pacing off)")
        return value

    # An egress proxy for the calls to Auth0 (the standard variables, either case): the
    # tenant's scheme picks HTTPS_PROXY or HTTP_PROXY, NO_PROXY lists hosts reached directly.
    # Secret: a proxy URL may carry a user and password.
    https_proxy: SecretStr | None = None
    http_proxy: SecretStr | None = None
    no_proxy: str | None = None

    # Redis Sentinel: with `REDIS_URL=sentinel://host:port;sentinel://host:port` (kombu's form),
    # the name of the monitored master every client of the worker connects to.
    grants_sentinel_master: str | None = None

    @field_validator("auth0_domain")
    @classmethod
    def _domain_is_https_or_loopback(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value:
            return value
        if "://" not in value:
            # A bare host: `tenant.eu.auth0.com`, maybe with a port; a path is as wrong here
            # as in the URL form (the Management API's path is the worker's business).
            bare = urlsplit(f"//{value}")
            if bare.path or bare.query or bare.fragment or not bare.hostname:
                raise ValueError(
                    "must be a host name (tenant.eu.auth0.com) or an http(s)://host[:port] URL, "
                    "without a path"
                )
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be a host name or an http(s)://host[:port] URL")
        # Plain http to anything but loopback is refused in `_plain_http_only_where_allowed`,
        # which also sees GRANTS_INSECURE_HTTP_HOSTS.
        if parts.path not in ("", "/"):
            raise ValueError("must not contain a path")
        return value

    @field_validator("grants_key_prefix")
    @classmethod
    def _prefix_is_printable(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError("must not contain white space")
        return value

    @model_validator(mode="after")
    def _plain_http_only_where_allowed(self) -> Self:
        parts = urlsplit(self.auth0_domain) if "://" in self.auth0_domain else None
        if parts is None or parts.scheme != "http" or not parts.hostname:
            return self
        allowed = {h.strip().lower() for h in self.grants_insecure_http_hosts.split(",")}
        if not is_loopback_host(parts.hostname) and parts.hostname.lower() not in allowed:
            raise ValueError(
                "AUTH0_DOMAIN: plain http is allowed only to a loopback address (or a host "
                "named in GRANTS_INSECURE_HTTP_HOSTS, for a local emulator); use https"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The one place that sees which `.env` this instance reads (`_env_file` may change it):
        # a misspelt name there would be as silently ignored as one in the environment.
        if isinstance(dotenv_settings, DotEnvSettingsSource):
            names = {name: "" for name in dotenv_settings.env_vars}
            for name, warning in unknown_grants_variables(names, with_names=True, where=".env"):
                _warn_once(f".env:{name}", warning)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @field_validator("grants_log_level", "grants_log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        # `info` and `INFO`, `JSON` and `json` are the same choice to anyone typing them.
        if isinstance(value, str):
            text = value.strip()
            return text.upper() if text.lower() in _LOG_LEVELS else text.lower()
        return value

    @model_validator(mode="after")
    def _warn_about_unknown_variables(self) -> Self:
        # A misspelt GRANTS_* variable would otherwise be silently ignored, in a worker or in a
        # producer alike. Once per name and process: settings are built more than once.
        for name, warning in unknown_grants_variables(os.environ, with_names=True):
            _warn_once(name, warning)
        return self

    @model_validator(mode="after")
    def _visibility_outlasts_the_task(self) -> Self:
        if (
            self.grants_visibility_timeout is not None
            and self.grants_visibility_timeout <= self.task_hard_time_limit_s
        ):
            raise ValueError(
                "GRANTS_VISIBILITY_TIMEOUT must exceed the task's hard time limit "
                f"({self.task_hard_time_limit_s:.0f} s = retry budget + margins), or a message "
                "would be delivered again while it is still being worked on"
            )
        return self

    @model_validator(mode="after")
    def _heartbeat_outlasts_its_interval(self) -> Self:
        if self.grants_heartbeat_ttl_s < 2 * self.grants_heartbeat_interval_s:
            raise ValueError(
                "GRANTS_HEARTBEAT_TTL_S must be at least twice GRANTS_HEARTBEAT_INTERVAL_S, or "
                "one late beat would make a live worker's messages be taken from it"
            )
        return self

    @model_validator(mode="after")
    def _sentinel_has_a_master(self) -> Self:
        if self.uses_sentinel and not self.grants_sentinel_master:
            raise ValueError(
                "GRANTS_SENTINEL_MASTER is required with REDIS_URL=sentinel://… (the name of "
                "the master the sentinels monitor)"
            )
        return self

    @property
    def uses_sentinel(self) -> bool:
        return self.redis_url.get_secret_value().startswith("sentinel://")

    @property
    def auth0_base_url(self) -> str:
        """`https://tenant` or the loopback `http://host:port` given; empty when unset."""
        if not self.auth0_domain:
            return ""
        if "://" in self.auth0_domain:
            return self.auth0_domain
        return f"https://{self.auth0_domain}"

    @property
    def management_audience(self) -> str:
        """The audience of the worker's Management API token."""
        if self.auth0_audience:
            return self.auth0_audience
        host = urlsplit(self.auth0_base_url).netloc
        return f"https://{host}/api/v2/"

    @property
    def task_soft_time_limit_s(self) -> float:
        # One request may start just before the budget ends and take a full read timeout.
        return (
            self.grants_retry_budget_s
            + self.grants_connect_timeout_s
            + self.grants_read_timeout_s
            + SOFT_LIMIT_MARGIN_S
        )

    @property
    def task_hard_time_limit_s(self) -> float:
        return self.task_soft_time_limit_s + HARD_LIMIT_MARGIN_S

    @property
    def visibility_timeout_s(self) -> float:
        if self.grants_visibility_timeout is not None:
            return self.grants_visibility_timeout
        return self.task_hard_time_limit_s + VISIBILITY_MARGIN_S

    def require_auth0(self) -> None:
        """Raise `ValueError` naming what is missing to call the Management API."""
        if not self.auth0_domain:
            raise ValueError("AUTH0_DOMAIN is required")
        secret = self.auth0_client_secret or self.auth0_client_secret_file
        has_credentials = self.auth0_client_id and secret
        if not (self.auth0_token or self.auth0_token_file) and not has_credentials:
            raise ValueError(
                "set AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET (or AUTH0_CLIENT_SECRET_FILE), "
                "or a static AUTH0_TOKEN (or AUTH0_TOKEN_FILE)"
            )


REDIS_SCHEMES = ("redis", "rediss", "unix", "sentinel")


def redis_url_problem(url: str) -> str | None:
    """Why `url` is not a usable REDIS_URL, in one sentence that does not repeat it; or None."""
    example = (
        "e.g. redis://:password@host:6379/0, rediss://… for TLS, unix:///path/redis.sock, "
        "sentinel://host:26379;sentinel://host:26380"
    )
    scheme, sep, _ = url.partition("://")
    if not sep:
        return f"must be a URL with a scheme ({example})"
    if scheme not in REDIS_SCHEMES:
        return f"scheme {scheme!r} is not one of {', '.join(REDIS_SCHEMES)} ({example})"
    if scheme == "sentinel":
        # kombu's form: one URL per sentinel, joined by `;`.
        for sentinel in url.split(";"):
            problem = redis_url_problem(sentinel.replace("sentinel://", "redis://", 1))
            if problem or not sentinel.startswith("sentinel://"):
                return f"every sentinel must be sentinel://host:port, joined by ';' ({example})"
        return None
    parts = urlsplit(url)
    if scheme == "unix":
        return None if parts.path else f"a unix:// URL needs the socket's path ({example})"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        return f"the port is not a number from 1 to 65535 ({example})"
    if not parts.hostname:
        return f"names no host ({example})"
    database = parts.path.lstrip("/")
    if database and not database.isdigit():
        return f"the path must be a database number, like /0 ({example})"
    return None


def known_variables() -> set[str]:
    """The environment names `Settings` reads."""
    return {name.upper() for name in Settings.model_fields}


_LOG_LEVELS = {"debug", "info", "warning", "error"}
_warned: set[str] = set()


def _warn_once(key: str, warning: str) -> None:
    # Once per name and process: settings are built more than once.
    if key not in _warned:
        _warned.add(key)
        log.warning(warning)


@overload
def unknown_grants_variables(
    environ: Mapping[str, str], *, with_names: Literal[False] = False, where: str = ""
) -> list[str]: ...


@overload
def unknown_grants_variables(
    environ: Mapping[str, str], *, with_names: Literal[True], where: str = ""
) -> list[tuple[str, str]]: ...


def unknown_grants_variables(
    environ: Mapping[str, str], *, with_names: bool = False, where: str = ""
) -> list[str] | list[tuple[str, str]]:
    """One warning per `GRANTS_*` variable no setting reads, with the likeliest intended name
    (with `with_names`: (variable, warning) pairs). `where` names the file they came from."""
    known = known_variables()
    origin = f" (in {where})" if where else ""
    warnings: list[tuple[str, str]] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("GRANTS_") or upper in known:
            continue
        shown = upper if where else name
        guess = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {guess[0]}?" if guess else ""
        warnings.append((name, f"unknown setting {shown}{origin} is ignored{hint}"))
    if with_names:
        return warnings
    return [warning for _, warning in warnings]


def unknown_env_file_variables(env_file: str | os.PathLike[str] = ".env") -> list[str]:
    """The warnings of `unknown_grants_variables` for the names set in `env_file`, if it exists."""
    path = Path(env_file)
    if not path.is_file():
        return []
    return unknown_grants_variables({name: "" for name in dotenv_values(path)}, where=str(env_file))


class SettingsInvalid(ValueError):
    """Raised when the settings break a rule; the message names each environment variable and
    its rule, never the value (REDIS_URL may hold a password)."""


def load_settings(**overrides: object) -> Settings:
    """`Settings` from the environment and `.env`, with `overrides` (None: not given) on top.

    Raises `SettingsInvalid`. The one loader every entry point uses.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsInvalid("; ".join(settings_problems(exc))) from None


def settings_problems(exc: ValidationError) -> list[str]:
    """One `VARIABLE: rule` sentence per error; rules across settings name them themselves."""
    problems = []
    for error in exc.errors():
        rule = str(error["msg"]).removeprefix("Value error, ")
        fields = [str(part) for part in error["loc"] if isinstance(part, str)]
        if not fields:
            problems.append(rule)
            continue
        problems.append(f"{fields[0].upper()}: {rule}")
    return problems
