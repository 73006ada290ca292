"""What a Redis error means for the one who met it: the one classifier of broker faults.

- `auth`: Redis refuses our credentials or our rights (`WRONGPASS`, `NOAUTH`, `NOPERM`, ACL
  refusals). Waiting does not help: a worker exits 2, a command says which setting to check.
- `transient`: Redis is away or cannot take writes for now (a lost or timed-out connection,
  `OOM` under `noeviction`, `READONLY` from a demoted primary, `LOADING`, `MASTERDOWN`, …).
  Waiting helps: stop consuming, report not ready, resume by itself.
- None: the error says nothing about the broker (`WRONGTYPE`, a missing script, bad
  arguments): a bug or crafted data, handled as any other error, never waited for.
"""

from __future__ import annotations

import re
from typing import Literal

import redis

FaultKind = Literal["auth", "transient"]

_AUTH_RESPONSES = ("NOAUTH", "WRONGPASS", "NOPERM")
_TRANSIENT_RESPONSES = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN")


def classify(exc: BaseException) -> FaultKind | None:
    """`auth`, `transient`, or None for an error that says nothing about the broker."""
    if isinstance(
        exc,
        redis.AuthenticationError
        | redis.exceptions.AuthorizationError
        | redis.exceptions.NoPermissionError,
    ):
        return "auth"
    if isinstance(exc, redis.ResponseError):
        text = _reply(exc)
        if text.startswith(_AUTH_RESPONSES):
            return "auth"
        if isinstance(exc, redis.exceptions.OutOfMemoryError | redis.exceptions.ReadOnlyError):
            return "transient"
        return "transient" if text.startswith(_TRANSIENT_RESPONSES) else None
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError):
        return "transient"
    if _is_kombu_connection_error(exc):
        return "transient"
    return None


# redis-py puts this before the reply of a command that failed inside a pipeline or MULTI.
_PIPELINE_ERROR = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: ", re.DOTALL)


def _reply(exc: BaseException) -> str:
    """The error reply as Redis sent it: a pipeline's `NOREPLICAS` is still `NOREPLICAS`."""
    return _PIPELINE_ERROR.sub("", str(exc), count=1)


def is_broker_fault(exc: BaseException) -> bool:
    """Redis failing (away, full, read-only, refusing us) rather than the request or the code."""
    return classify(exc) is not None


def describe(exc: BaseException) -> str:
    """`Type: CODE`: the class and the first word of a Redis error (its code; the rest may be
    long, and nothing past the code is needed to act on it)."""
    words = _reply(exc).split()
    return f"{type(exc).__name__}: {words[0] if words else ''}".rstrip(": ")


def _is_kombu_connection_error(exc: BaseException) -> bool:
    # kombu wraps a broker connection failure in its OperationalError; imported here so that
    # classifying costs nothing for code that never loads kombu.
    try:
        import kombu.exceptions
    except ImportError:  # pragma: no cover - kombu is a dependency
        return False
    return isinstance(exc, kombu.exceptions.OperationalError)
