"""The dashboard's defences: where it may listen, who may look, and which POSTs are genuine.

- Loopback by default. Any other address needs `GRANTS_DASHBOARD_TOKEN`; with a token set,
  every request needs a session opened with it at /login. The session lives in Redis
  (`worker.dashboard.sessions`: logout, idleness, 12 h and a token change end it); the cookie
  (HttpOnly, SameSite=Strict, `Secure` behind a trusted TLS proxy, signed with a key that lives
  only as long as the process) carries only its id.
- Every POST carries the session's CSRF token in a form field, compared in constant time, and
  is refused when the browser says it came from another site (Origin, Sec-Fetch-Site).
- On loopback the Host header must name loopback, so a rebound DNS name cannot reach it.
- Pages are sent with a strict Content-Security-Policy: scripts only from our own /static.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from grant_worker.config.settings import is_loopback_host
from grant_worker.worker.dashboard.sessions import Session, SessionStore

CSRF_FIELD = "csrf"
SESSION_COOKIE = "grants_dashboard"
SESSION_ID = "sid"
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
    if not token or not token.strip():
        raise BindRefused(
            f"refusing to listen on {host}: set GRANTS_DASHBOARD_TOKEN to listen on an "
            "address other than loopback (every visitor will then have to log in with it)"
        )
    if len(token.strip()) < 16:
        raise BindRefused("GRANTS_DASHBOARD_TOKEN: at least 16 characters")


def bind_address(host: str) -> str:
    """The address to listen on: `[::1]` as written in a URL is `::1` to a socket."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def client_address(request: Request) -> str:
    """Who is asking (the proxy's X-Forwarded-For once the proxy is trusted)."""
    return request.client.host if request.client is not None else "unknown"


def trusted_proxies(setting: str) -> list[str]:
    return [part.strip() for part in setting.split(",") if part.strip()]


def allowed_hosts(host: str) -> list[str]:
    """Host headers accepted: loopback names only when bound to loopback."""
    return [*LOOPBACK_HOSTS, host] if is_loopback_host(host) else ["*"]


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def logged_in(request: Request) -> Session | None:
    """The server-side session `LoginRequired` found for this request, if any."""
    session = getattr(request.state, "dashboard_session", None)
    return session if isinstance(session, Session) else None


def csrf_token(request: Request) -> str:
    """The session's CSRF token: the server-side session's once logged in; before (the login
    form) and without a token (loopback), one kept in the cookie, created on first use."""
    if (session := logged_in(request)) is not None:
        return session.csrf
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
    session = logged_in(request)
    expected = session.csrf if session is not None else request.session.get(CSRF_FIELD)
    if not isinstance(given, str) or not isinstance(expected, str):
        raise CsrfRefused("missing CSRF token")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRefused("wrong CSRF token")
    return form


class LoginRequired(BaseHTTPMiddleware):
    """With a token configured, only /login and /static are open without a session."""

    def __init__(self, app: object, *, token: str | None, sessions: SessionStore) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self._token = token
        self._sessions = sessions

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        open_path = request.url.path.startswith(OPEN_PATHS)
        session = None
        if self._token and not request.url.path.startswith("/static/"):
            session_id = request.session.get(SESSION_ID)
            session = await run_in_threadpool(self._sessions.current, session_id, self._token)
            if session is None and session_id is not None:
                request.session.pop(SESSION_ID, None)
        request.state.dashboard_session = session
        if self._token and not open_path and session is None:
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
