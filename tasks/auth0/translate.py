"""Translation of HTTP answers and `requests` exceptions into the error tree (pure).

The one place where this happens; only `tasks.auth0.api` calls it. Every error is built from the
status and Auth0's own `message` / `errorCode` (or OAuth's `error` / `error_description`),
never from request headers or bodies. A tenant, or a proxy in front of it, may echo what it
received: every field taken from an answer (codes and the redirect target included) is
redacted by `redact`, before anything is cut, against each form a secret travels in (raw, URL-
and form-encoded, JSON-escaped, base64 alone and as the `id:secret` of Basic auth; a `Bearer`
token is its raw form after the word). The whole body is redacted before it is parsed as well,
so that a secret hidden behind JSON escapes (`\u0073ecret`) is caught once decoded.

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

import base64
import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

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
# An error code is an identifier (`invalid_body`, `access_denied`); anything longer is not one.
_MAX_CODE_CHARS = 100
REDACTED = "[redacted]"


def management_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    now_epoch_s: float,
    secrets: Iterable[str] = (),
    client_id: str | None = None,
) -> Auth0Error:
    """The error for a non-2xx answer of a Management API call (module table).

    `secrets`: what was sent and must never come back out (the token, the client secret);
    `client_id`: for the base64 `id:secret` form."""
    forms = secret_forms(secrets, client_id)
    fields = _error_fields(body, forms)
    message = _describe(status, fields)
    code = _code(fields.get("errorCode") or fields.get("error_code") or fields.get("code"))
    kwargs: dict[str, Any] = {"http_status": status, "auth0_error_code": code}
    if status == 429:
        return _rate_limited(message, headers, now_epoch_s, code)
    if status == 408:
        return UpstreamError(message, **kwargs, ambiguous=False)
    if status >= 500:
        retry_after = parse_retry_after(headers.get("Retry-After"), now_epoch_s)
        return UpstreamError(message, **kwargs, ambiguous=True, retry_after_s=retry_after)
    if status < 400:
        where = _text(redact(headers.get("Location", ""), forms)) or ""
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
    client_id: str | None = None,
) -> Auth0Error:
    """The error for a non-200 answer of `/oauth/token` (module table); `secrets` and
    `client_id` as for `management_error`."""
    forms = secret_forms(secrets, client_id)
    fields = _error_fields(body, forms)
    message = f"token request refused: {_describe(status, fields)}"
    code = _code(fields.get("errorCode")) or _code(fields.get("error"))
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


def _error_fields(body: bytes | str, forms: _Forms) -> dict[str, str]:
    """The answer's top-level text fields, each redacted whole (numbers kept as text)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = redact(text, forms)
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {"message": " ".join(text.split())[:_MAX_MESSAGE_CHARS]} if text else {}
    if not isinstance(data, dict):
        return {}
    return {
        str(name): redact(value if isinstance(value, str) else json.dumps(value), forms)
        for name, value in data.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    }


def _code(value: Any) -> str | None:
    return value[:_MAX_CODE_CHARS] if isinstance(value, str) and value else None


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
    # Cut only what has been redacted already (`_error_fields`): a cut first could leave the
    # head of a secret that straddles the limit.
    return value[:_MAX_MESSAGE_CHARS] if isinstance(value, str) and value else None


class _Forms:
    """Every form of a set of secrets, as one case-insensitive pattern (percent-encoding may
    come back in either case; redacting more than the secret costs nothing)."""

    def __init__(self, forms: Iterable[str]) -> None:
        ordered = sorted({form for form in forms if form}, key=len, reverse=True)
        self.pattern = (
            re.compile("|".join(re.escape(form) for form in ordered), re.IGNORECASE)
            if ordered
            else None
        )


def secret_forms(secrets: Iterable[str], client_id: str | None = None) -> _Forms:
    """The forms in which `secrets` travel, and so may be echoed back."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        forms.update(
            {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
            | {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
        )
        pairs = [secret.encode()] + ([f"{client_id}:{secret}".encode()] if client_id else [])
        for pair in pairs:
            for encoded in (base64.b64encode(pair), base64.urlsafe_b64encode(pair)):
                text = encoded.decode("ascii")
                forms.update({text, text.rstrip("="), quote(text, safe="")})
    return _Forms(forms)


def redact(text: str, secrets: Iterable[str] | _Forms) -> str:
    """`text` with every form of `secrets` (see `secret_forms`) replaced by `[redacted]`."""
    forms = secrets if isinstance(secrets, _Forms) else secret_forms(secrets)
    if forms.pattern is None or not text:
        return text
    return forms.pattern.sub(REDACTED, text)
