"""Translation of HTTP answers and `requests` exceptions into the error tree (pure).

The one place where this happens; only `tasks.auth0.api` calls it. Every error is built from the
status and Auth0's own `message` / `errorCode` (or OAuth's `error` / `error_description`),
never from request headers or bodies, and any secret text an answer echoes is redacted.

| answer                          | Management API call                | `/oauth/token`            |
|---------------------------------|------------------------------------|---------------------------|
| 400                             | `BadRequest`                       | `Unauthorized`            |
| 401                             | `Unauthorized` (after one refresh) | `Unauthorized`            |
| 403                             | `Forbidden` (`InsufficientScope`)  | `Forbidden`               |
| 404                             | `NotFound`                         | `Unauthorized`            |
| 409                             | `GrantConflict`                    | `Unauthorized`            |
| other 4xx                       | `BadRequest`                       | `Unauthorized`            |
| 429                             | `RateLimited` (Retry-After, reset) | `RateLimited`             |
| 408                             | `UpstreamError`, not ambiguous     | `UpstreamError`           |
| 5xx                             | `UpstreamError`, ambiguous         | `UpstreamError`           |
| 3xx (never followed)            | `UpstreamError`, not ambiguous     | `UpstreamError`           |
| connect error / connect timeout | `NetworkError`, not ambiguous      | `NetworkError`            |
| read timeout, dropped, reset    | `NetworkError`, ambiguous          | `NetworkError`            |

A Management API 403 whose `errorCode` is `insufficient_scope` is `InsufficientScope` (a
`Forbidden`): callers that can do without a call (the plan's read checks) tell it apart.

`ambiguous` means "the call may have been applied although no usable answer came"; a token
request creates nothing, so its failures are never ambiguous.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
)

from grant_worker.tasks.errors import (
    Auth0Error,
    BadRequest,
    Forbidden,
    GrantConflict,
    InsufficientScope,
    NetworkCause,
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
    if status == 403 and code == "insufficient_scope":
        return InsufficientScope(message, **kwargs)
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
    The message names what failed and where (`host:port`), never a URL's credentials.
    """
    target = _target(exc)
    where = target or "the tenant"
    cause: NetworkCause
    if isinstance(exc, requests.exceptions.ProxyError):
        # Checked first: urllib3 wraps every failure to reach the proxy as a ProxyError.
        what, ambiguous, cause = "could not get through the proxy", False, "proxy"
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        what, ambiguous, cause = f"timed out connecting to {where}", False, "connect_timeout"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        what, ambiguous, cause = f"timed out waiting for {where} to answer", True, "read_timeout"
    elif isinstance(exc, requests.exceptions.SSLError):
        what, ambiguous, cause = f"TLS handshake with {where} failed", False, "tls"
    elif isinstance(exc, requests.exceptions.ConnectionError) and _failed_to_connect(exc):
        cause = _connect_failure(exc)
        what = {
            "dns": f"could not resolve the host name of {where} (DNS)",
            "refused": f"connection refused by {where}",
            "connect_timeout": f"timed out connecting to {where}",
        }.get(cause, f"could not connect to {where}")
        ambiguous = False
    elif isinstance(exc, requests.exceptions.ConnectionError):
        what, ambiguous, cause = f"connection to {where} dropped before the answer", True, "dropped"
    elif isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        what, ambiguous, cause = f"not sent ({exc})", False, "not_sent"
    else:
        what, ambiguous, cause = f"no usable answer ({type(exc).__name__})", True, "other"
    return NetworkError(
        f"{endpoint}: {what}", ambiguous=ambiguous and may_apply, cause=cause, target=target
    )


def _target(exc: requests.RequestException) -> str | None:
    """`host:port` of the URL the failed call was for (never its credentials or path)."""
    url = getattr(getattr(exc, "request", None), "url", None)
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        port = None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}" if port else host


def _connect_failure(exc: requests.exceptions.ConnectionError) -> NetworkCause:
    reason = _reason(exc)
    if isinstance(reason, NameResolutionError):
        return "dns"
    # urllib3's NewConnectionError subclasses ConnectTimeoutError: ask for it first.
    if isinstance(reason, NewConnectionError):
        cause = reason.__cause__ or reason.__context__
        return "refused" if isinstance(cause, ConnectionRefusedError) else "other"
    if isinstance(reason, ConnectTimeoutError):
        return "connect_timeout"
    return "other"


@contextlib.contextmanager
def failing_as(endpoint: str) -> Iterator[None]:
    """Name the call on any `Auth0Error` that does not name one yet (the innermost wins)."""
    try:
        yield
    except Auth0Error as exc:
        if exc.endpoint is None:
            exc.endpoint = endpoint
        raise


def _reason(exc: requests.exceptions.ConnectionError) -> object:
    reason = exc.args[0] if exc.args else None
    return reason.reason if isinstance(reason, MaxRetryError) else reason


def _failed_to_connect(exc: requests.exceptions.ConnectionError) -> bool:
    return isinstance(_reason(exc), NewConnectionError | ConnectTimeoutError)


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
