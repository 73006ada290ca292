"""Translation of HTTP answers and `requests` exceptions into the error tree (pure).

The one place where this happens; only `tasks.auth0.api` calls it. Every error is built from the
status and Auth0's own `message` / `errorCode` (or OAuth's `error` / `error_description`),
never from request headers or bodies, and any secret text an answer echoes is redacted.

| answer                          | Management API call                | `/oauth/token`            |
|---------------------------------|------------------------------------|---------------------------|
| 400                             | `BadRequest`                       | `Unauthorized`            |
| 401                             | `Unauthorized` (after one refresh) | `Unauthorized`            |
| 403                             | `Forbidden`                        | `Forbidden`               |
| 404                             | `NotFound`                         | `Unauthorized`            |
| 409                             | `GrantConflict`                    | `Unauthorized`            |
| other 4xx                       | `BadRequest`                       | `Unauthorized`            |
| 429                             | `RateLimited` (Retry-After, reset) | `RateLimited`             |
| 408                             | `UpstreamError`, not ambiguous     | `UpstreamError`           |
| 5xx                             | `UpstreamError`, ambiguous         | `UpstreamError`           |
| 3xx (never followed)            | `UpstreamError`, not ambiguous     | `UpstreamError`           |
| connect error / connect timeout | `NetworkError`, not ambiguous      | `NetworkError`            |
| read timeout, dropped, reset    | `NetworkError`, ambiguous          | `NetworkError`            |

`ambiguous` means "the call may have been applied although no usable answer came"; a token
request creates nothing, so its failures are never ambiguous.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from grant_worker.tasks.errors import (
    Auth0Error,
    BadRequest,
    Forbidden,
    GrantConflict,
    NetworkError,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamError,
)
from grant_worker.tasks.flow.retry_policy import parse_reset_epoch, parse_retry_after

_MAX_MESSAGE_CHARS = 500


def management_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    now_epoch_s: float,
    secrets: Iterable[str] = (),
) -> Auth0Error:
    """The error for a non-2xx answer of a Management API call (module table)."""
    fields = _error_fields(body)
    message = redact(_describe(status, fields), secrets)
    code = fields.get("errorCode") or fields.get("error_code") or fields.get("code")
    kwargs: dict[str, Any] = {"http_status": status, "auth0_error_code": code}
    if status == 429:
        return _rate_limited(message, headers, now_epoch_s, code)
    if status == 408:
        return UpstreamError(message, **kwargs, ambiguous=False)
    if status >= 500:
        retry_after = parse_retry_after(headers.get("Retry-After"), now_epoch_s)
        return UpstreamError(message, **kwargs, ambiguous=True, retry_after_s=retry_after)
    if status < 400:
        where = headers.get("Location", "")
        return UpstreamError(
            f"{message} (redirect to {where!r} not followed)", **kwargs, ambiguous=False
        )
    by_status: dict[int, type[Auth0Error]] = {
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
        409: GrantConflict,
    }
    return by_status.get(status, BadRequest)(message, **kwargs)


def token_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    now_epoch_s: float,
    secrets: Iterable[str] = (),
) -> Auth0Error:
    """The error for a non-200 answer of `/oauth/token` (module table)."""
    fields = _error_fields(body)
    message = redact(f"token request refused: {_describe(status, fields)}", secrets)
    code = fields.get("error") if isinstance(fields.get("error"), str) else None
    code = fields.get("errorCode") or code
    if status == 429:
        return _rate_limited(message, headers, now_epoch_s, code)
    if status >= 500 or status == 408 or status < 400:
        retry_after = parse_retry_after(headers.get("Retry-After"), now_epoch_s)
        return UpstreamError(
            message,
            http_status=status,
            auth0_error_code=code,
            ambiguous=False,
            retry_after_s=retry_after,
        )
    if status == 403:
        return Forbidden(message, http_status=status, auth0_error_code=code)
    return Unauthorized(message, http_status=status, auth0_error_code=code)


def network_error(
    exc: requests.RequestException, endpoint: str, *, may_apply: bool = True
) -> NetworkError:
    """The error for a call that got no HTTP answer; ambiguous unless it failed to connect.

    `may_apply`: False for calls that change nothing (a token request), never ambiguous.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        what, ambiguous = "timed out connecting", False
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        what, ambiguous = "timed out waiting for the answer", True
    elif isinstance(exc, requests.exceptions.SSLError):
        what, ambiguous = "TLS handshake failed", False
    elif isinstance(exc, requests.exceptions.ConnectionError) and _failed_to_connect(exc):
        what, ambiguous = "could not connect", False
    elif isinstance(exc, requests.exceptions.ConnectionError):
        what, ambiguous = "connection dropped before the answer", True
    elif isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        what, ambiguous = f"not sent ({exc})", False
    else:
        what, ambiguous = f"no usable answer ({type(exc).__name__})", True
    return NetworkError(f"{endpoint}: {what}", ambiguous=ambiguous and may_apply)


@contextlib.contextmanager
def failing_as(endpoint: str) -> Iterator[None]:
    """Name the call on any `Auth0Error` that does not name one yet (the innermost wins)."""
    try:
        yield
    except Auth0Error as exc:
        if exc.endpoint is None:
            exc.endpoint = endpoint
        raise


def _failed_to_connect(exc: requests.exceptions.ConnectionError) -> bool:
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _rate_limited(
    message: str, headers: Mapping[str, str], now_epoch_s: float, code: str | None
) -> RateLimited:
    return RateLimited(
        message,
        retry_after_s=parse_retry_after(headers.get("Retry-After"), now_epoch_s),
        reset_at_epoch_s=parse_reset_epoch(headers.get("x-ratelimit-reset")),
        auth0_error_code=code,
    )


def _error_fields(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return {"message": _plain_text(body)} if body else {}
    return data if isinstance(data, dict) else {}


def _plain_text(body: bytes | str) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return " ".join(text.split())[:_MAX_MESSAGE_CHARS]


def _describe(status: int, fields: Mapping[str, Any]) -> str:
    """`404 Not Found: No resource with identifier …` from Auth0's error body."""
    reason = _text(fields.get("error")) or _phrase(status)
    detail = _text(fields.get("error_description")) or _text(fields.get("message"))
    head = f"{status} {reason.replace('_', ' ')}".strip()
    return f"{head}: {detail}" if detail else head


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _text(value: Any) -> str | None:
    return value[:_MAX_MESSAGE_CHARS] if isinstance(value, str) and value else None


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text
