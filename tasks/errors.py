"""One exception tree, split by what the retry policy must do with each error.

    ReturnToQueue                 not an error: back to the queue, not counted     → requeued
    GrantWorkerError
    ├── RequestInvalid            the request itself is bad; nothing is sent     → rejected
    ├── Protected                 a revoke of a grant that must stay; not sent   → rejected
    └── Auth0Error                the Management API (or the way to it) refused  → failed
        ├── RetryableError        worth another attempt inside the retry budget
        │   ├── RateLimited       429; carries the server's reset / Retry-After
        │   ├── UpstreamError     5xx, 408
        │   │   └── ConflictUnresolved  409, but the existing grant cannot be found
        │   └── NetworkError      connect / read errors and timeouts
        └── FinalError            never retried
            ├── BadRequest        400
            ├── Unauthorized      401 (a token refresh is tried once before it is final)
            ├── Forbidden         403
            │   └── InsufficientScope  403 `insufficient_scope`: the token lacks the call's scope
            ├── NotFound          404 (unknown audience or client)
            └── GrantConflict     409 (resolved by a lookup and `on_conflict`)

Third-party exceptions (`requests`) and HTTP statuses are translated into this tree in one
place only, `tasks.auth0.translate` (used by `tasks.auth0.api` alone). Messages never carry
secrets: they are built from status codes and Auth0's own error bodies, never from request
headers, and any secret an answer echoes is redacted (`tasks.auth0.translate.redact`).

Every `Auth0Error` that leaves `Provisioner.provision` carries `attempts` (Management API calls
made for the request) and `endpoint` (the call that failed: `create_grant`, `list_grants`,
`update_grant`, `get_grant`, `delete_grant`, `token`; None when no call was made).
`UpstreamError` and `NetworkError` carry `ambiguous`: True when the failed call may have reached
Auth0 and been applied (a 5xx, a read timeout, a dropped connection), False when it certainly
was not (a connect error, a 408, a failed token request).
"""

from __future__ import annotations

from typing import Any, Literal

from grant_worker.tasks.messages.models import ErrorCode, ErrorInfo


class ReturnToQueue(Exception):
    """Raised when a request must go back to the queue untouched: not a failure, not a delivery.

    Waiting is never failing: the fleet has no rate slot soon, the breaker is open, a 429's
    reset is far off, or the worker is shutting down. The handler takes back the delivery it
    counted, records nothing, and the task puts the message back on the queue after `delay_s`.
    """

    def __init__(self, reason: str, *, delay_s: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = max(0.0, delay_s)


class GrantWorkerError(Exception):
    """Base of every error grant-worker raises on purpose."""

    code: ErrorCode = "invalid_request"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        auth0_error_code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.auth0_error_code = auth0_error_code
        self.details = details

    def to_error_info(self) -> ErrorInfo:
        return ErrorInfo(
            code=self.code,
            message=self.message,
            http_status=self.http_status,
            auth0_error_code=self.auth0_error_code,
            retryable=self.retryable,
            details=self.details,
        )


class RequestInvalid(GrantWorkerError):
    """Raised when a request fails validation; `problems` name each field and rule."""

    code: ErrorCode = "invalid_request"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), details={"problems": problems})
        self.problems = problems


class Protected(GrantWorkerError):
    """Raised when a revoke names the worker's own grant or a system grant: never deleted."""

    code: ErrorCode = "protected"
    # Management API calls made before the grant was found to be protected.
    attempts: int = 0


class Auth0Error(GrantWorkerError):
    """Raised when the Management API, or the network to it, does not give a usable answer."""

    # Management API calls made for the request when the error ended it (set by the provisioner).
    attempts: int = 0
    # The call that failed (set by tasks.auth0.api); None when the error came before any call.
    endpoint: str | None = None


class RetryableError(Auth0Error):
    """Raised for answers that may succeed when tried again later."""

    retryable = True
    # Seconds the server asked us to wait (Retry-After or the rate-limit reset), if it said.
    retry_after_s: float | None = None
    # True when the failed call may have been applied by Auth0 although no answer says so.
    ambiguous: bool = False


class RateLimited(RetryableError):
    """Raised on 429 Too Many Requests."""

    code: ErrorCode = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None,
        reset_at_epoch_s: float | None,
        auth0_error_code: str | None = None,
    ) -> None:
        super().__init__(message, http_status=429, auth0_error_code=auth0_error_code)
        self.retry_after_s = retry_after_s
        self.reset_at_epoch_s = reset_at_epoch_s


class UpstreamError(RetryableError):
    """Raised on 5xx and 408: Auth0 failed, the request may or may not have been applied."""

    code: ErrorCode = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        auth0_error_code: str | None = None,
        details: dict[str, Any] | None = None,
        ambiguous: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(
            message, http_status=http_status, auth0_error_code=auth0_error_code, details=details
        )
        self.ambiguous = ambiguous
        self.retry_after_s = retry_after_s


class ConflictUnresolved(UpstreamError):
    """Raised when Auth0 answers 409 but no grant matching the request can be found.

    The grant was most likely deleted between the create and the lookup; creating again is
    the right move, so this is retryable (the provisioner re-creates inside the budget).
    """


NetworkCause = Literal[
    "dns",
    "refused",
    "connect_timeout",
    "tls",
    "proxy",
    "read_timeout",
    "dropped",
    "not_sent",
    "other",
]


class NetworkError(RetryableError):
    """Raised when no HTTP answer arrived: refused, reset, dropped, or timed out.

    `cause` says which, so that an operator can be told the fix (`tasks.auth0.diagnosis`);
    `target` is the `host:port` the call went to, when known.
    """

    code: ErrorCode = "network_error"

    def __init__(
        self,
        message: str,
        *,
        ambiguous: bool,
        cause: NetworkCause = "other",
        target: str | None = None,
    ) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous
        self.cause: NetworkCause = cause
        self.target = target


class FinalError(Auth0Error):
    """Raised for answers that will not change on retry."""


class BadRequest(FinalError):
    """Raised on 400: Auth0 refused the body (schema or business rule)."""

    code: ErrorCode = "bad_request"


class Unauthorized(FinalError):
    """Raised on 401 (token invalid or expired) and on refused client credentials."""

    code: ErrorCode = "unauthorized"


class Forbidden(FinalError):
    """Raised on 403: the worker's token lacks the scope for the call."""

    code: ErrorCode = "forbidden"


class InsufficientScope(Forbidden):
    """Raised on 403 `insufficient_scope`: the token lacks the scope this call needs (a
    configuration of the tenant, not a fault of the request)."""


class NotFound(FinalError):
    """Raised on 404: unknown audience (resource server), client or grant."""

    code: ErrorCode = "not_found"


class GrantConflict(FinalError):
    """Raised on 409: a grant for this client, audience and subject type already exists."""

    code: ErrorCode = "conflict"
