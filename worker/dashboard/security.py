"""The dashboard's defences: where it may listen, who may look, and which POSTs are genuine.

- Loopback by default. Any other address needs `GRANTS_DASHBOARD_TOKEN`; with a token set,
  every request needs a session opened with it at /login (cookie HttpOnly, SameSite=Strict,
  signed with a key that lives only as long as the process).
- Every POST carries the session's CSRF token in a form field, compared in constant time, and
  is refused when the browser says it came from another site (Origin, Sec-Fetch-Site).
- On loopback the Host header must name loopback, so a rebound DNS name cannot reach it.
- Pages are sent with a strict Content-Security-Policy: scripts only from our own /static.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from grant_worker.config.settings import is_loopback_host

CSRF_FIELD = "csrf"
SESSION_COOKIE = "grants_dashboard"
SESSION_MAX_AGE_S = 12 * 3600
OPEN_PATHS = ("/login", "/static/")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


class BindRefused(ValueError):
    """The dashboard must not listen where it was asked to."""


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token (one of at least 16 characters)."""
    if is_loopback_host(host):
        return
    if not token:
        raise BindRefused(
            f"refusing to listen on {host}: set GRANTS_DASHBOARD_TOKEN to listen on an "
            "address other than loopback (every visitor will then have to log in with it)"
        )
    if len(token) < 16:
        raise BindRefused("GRANTS_DASHBOARD_TOKEN: at least 16 characters")


def allowed_hosts(host: str) -> list[str]:
    """Host headers accepted: loopback names only when bound to loopback."""
    return [*LOOPBACK_HOSTS, host] if is_loopback_host(host) else ["*"]


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


def cross_site(request: Request) -> bool:
    """True when the browser tells us the request came from another origin."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin != f"{request.url.scheme}://{request.url.netloc}"


class CsrfRefused(Exception):
    pass


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its origin and CSRF token are shown genuine; else `CsrfRefused`."""
    if cross_site(request):
        raise CsrfRefused("cross-site request")
    form = await request.form()
    given = form.get(CSRF_FIELD)
    expected = request.session.get(CSRF_FIELD)
    if not isinstance(given, str) or not isinstance(expected, str):
        raise CsrfRefused("missing CSRF token")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRefused("wrong CSRF token")
    return form


class LoginRequired(BaseHTTPMiddleware):
    """With a token configured, only /login and /static are open without a session."""

    def __init__(self, app: object, *, token: str | None) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self._token = token

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        open_path = request.url.path.startswith(OPEN_PATHS)
        if self._token and not open_path and request.session.get("authenticated") is not True:
            if request.method == "GET" and "hx-request" not in request.headers:
                return RedirectResponse("/login", status_code=303)
            return PlainTextResponse("log in first", status_code=401)
        return await call_next(request)


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response
