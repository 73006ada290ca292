"""The one error a producer meets when Redis fails it: `BrokerUnavailable`.

`GrantClient` raises it for every Redis failure (unreachable, out of memory, read-only,
loading, refused credentials), with the Redis error as its `__cause__`, so that a pipeline
catches one documented type, as `grants` turns the same failures into exit code 4 (2 for
refused credentials). Its message names the failure, never the URL (it may carry a password).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import redis

from grant_worker.config.settings import Settings
from grant_worker.tasks.broker_faults import classify


class BrokerUnavailable(ConnectionError):
    """Raised when Redis cannot take or give what the client asked; `credentials_refused`
    is True when Redis refused the user or password of REDIS_URL (retrying will not help)."""

    def __init__(self, message: str, *, credentials_refused: bool) -> None:
        super().__init__(message)
        self.message = message
        self.credentials_refused = credentials_refused


@contextlib.contextmanager
def broker_errors(settings: Settings) -> Iterator[None]:
    """Turn any Redis error raised inside into `BrokerUnavailable`."""
    try:
        yield
    except redis.RedisError as exc:
        refused = classify(exc) == "auth"
        what = "refused the credentials" if refused else "is unavailable"
        text = f"Redis at REDIS_URL {what}: {type(exc).__name__}: {_scrubbed(str(exc), settings)}"
        raise BrokerUnavailable(text, credentials_refused=refused) from exc


def _scrubbed(text: str, settings: Settings) -> str:
    password = urlsplit(settings.redis_url.get_secret_value()).password
    return text.replace(password, "***") if password else text
