"""Typed settings for every process of grant-worker.

Sources, highest priority first: keyword arguments (tests, the demo), environment variables,
a `.env` file in the working directory, then the defaults below. `Settings` is read once at the
entry point (`grants …`, `celery -A grant_worker.worker.app`) and passed down; nothing reads the
environment at import time.
"""

from __future__ import annotations

import ipaddress
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A task may outlive its retry budget by one in-flight HTTP call plus bookkeeping; the hard time
# limit and the visibility timeout are derived from the budget with these margins so that a
# message is never redelivered while the first delivery is still working on it.
SOFT_LIMIT_MARGIN_S = 2.0
HARD_LIMIT_MARGIN_S = 5.0
VISIBILITY_MARGIN_S = 5.0


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Configuration from the environment names of DESIGN.md."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    redis_url: SecretStr = Field(default=SecretStr("redis://localhost:6379/0"))
    auth0_domain: str = ""
    auth0_client_id: str | None = None
    auth0_client_secret: SecretStr | None = None
    auth0_token: SecretStr | None = None
    auth0_audience: str | None = None

    grants_queue: str = Field(default="grants", min_length=1)
    grants_key_prefix: str = "grants:"
    grants_concurrency: int = Field(default=8, ge=1, le=256)
    # The fleet's own ceiling on Management API calls, shared by every worker process through
    # Redis. 0 disables it (the tenant's 429s and their reset headers still pace the worker).
    grants_rate_limit: float = Field(default=10.0, ge=0)
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
    # How long a per-request outcome record is kept for deduplicating redeliveries and replays.
    grants_record_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    # Approximate cap on the results / dead streams (XADD MAXLEN ~); 0 keeps everything.
    grants_stream_maxlen: int = Field(default=1_000_000, ge=0)
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
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be a host name or an http(s)://host[:port] URL")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError("plain http is allowed only to a loopback address; use https")
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
        has_credentials = self.auth0_client_id and self.auth0_client_secret
        if not self.auth0_token and not has_credentials:
            raise ValueError("set AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET, or a static AUTH0_TOKEN")
