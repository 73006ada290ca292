"""The dashboard's ASGI application: Starlette, Jinja2 templates, one vendored htmx file."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import redis
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from grant_worker.config.settings import Settings
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.keys import Keys
from grant_worker.worker.client.dead_letters import DeadLetters
from grant_worker.worker.dashboard import routes
from grant_worker.worker.dashboard.reads import DashboardReads
from grant_worker.worker.dashboard.security import (
    SESSION_COOKIE,
    LoginRequired,
    SecurityHeaders,
    allowed_hosts,
    check_bind,
    trusted_proxies,
)
from grant_worker.worker.dashboard.sessions import SESSION_MAX_AGE_S, SessionStore
from grant_worker.worker.dashboard.views import cut, human_seconds, json_cut
from grant_worker.worker.shown import shown

HERE = Path(__file__).parent


@dataclass
class Dashboard:
    """What the routes share: settings, the reads, and the dead-letter operations."""

    settings: Settings
    reads: DashboardReads
    redis: redis.Redis
    templates: Jinja2Templates
    token: str | None
    sessions: SessionStore

    @cached_property
    def dead_letters(self) -> DeadLetters:
        # Built on first use: replay needs a Celery producer, the pages do not.
        from grant_worker.worker.client.grant_client import GrantClient

        return DeadLetters(GrantClient(self.settings, client=self.redis))


def _shown(value: Any) -> Any:
    """Every `{{ … }}`: control and bidi characters made visible (HTML escaping does not touch
    them); markup the code built itself (`Markup`, e.g. the charts' SVG) is left as it is."""
    if isinstance(value, Markup) or value is None or isinstance(value, int | float):
        return value
    return shown(value, multiline=True)


def make_templates() -> Jinja2Templates:
    # Autoescape everything: request ids, batch ids, metadata and raw dead requests are
    # producer-controlled text.
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=_shown,
    )
    env.filters["seconds"] = human_seconds
    env.filters["cut"] = cut
    env.filters["json_cut"] = json_cut
    return Jinja2Templates(env=env)


def create_app(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    client: redis.Redis | None = None,
) -> Starlette:
    """The dashboard for `settings`' deployment; raises `BindRefused` for an unsafe `host`."""
    token = settings.grants_dashboard_token
    token_text = token.get_secret_value() if token is not None else None
    check_bind(host, token_text)
    client = client or make_redis(settings)
    keys = Keys(settings.grants_key_prefix)
    proxies = trusted_proxies(settings.grants_dashboard_trusted_proxies)
    dashboard = Dashboard(
        settings=settings,
        reads=DashboardReads(client, keys, settings.grants_queue),
        redis=client,
        templates=make_templates(),
        token=token_text or None,
        sessions=SessionStore(client, keys, idle_s=settings.grants_dashboard_idle_s),
    )
    # Behind a TLS-terminating proxy the browser speaks https to the proxy: believing the
    # proxy's X-Forwarded-Proto makes the request's origin the browser's (the cross-site check
    # passes) and its X-Forwarded-For names the client that login throttling counts.
    proxy = [Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)] if proxies else []
    app = Starlette(
        routes=[
            *[Route(path, endpoint, methods=methods) for path, endpoint, methods in routes.ROUTES],
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[
            *proxy,
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host)),
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                # A key per process: restarting the dashboard ends every session.
                secret_key=secrets.token_urlsafe(32),
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_MAX_AGE_S,
                same_site="strict",
                https_only=bool(proxies),
            ),
            Middleware(LoginRequired, token=dashboard.token, sessions=dashboard.sessions),
        ],
    )
    app.state.dashboard = dashboard
    return app
