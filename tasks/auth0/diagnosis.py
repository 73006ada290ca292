"""What an `Auth0Error` means for the operator: its real cause and the fix (pure).

`grants doctor` and the worker's start-up check tell an unknown domain, a closed port, a proxy
that refuses, a TLS failure, an Auth0 outage and refused credentials apart, each with its own
fix; none of them is "check the credentials" unless the tenant said so.
"""

from __future__ import annotations

from dataclasses import dataclass

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.proxies import proxy_address
from grant_worker.tasks.auth0.session import tenant_proxy
from grant_worker.tasks.errors import (
    Auth0Error,
    Forbidden,
    NetworkError,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamError,
)

STATUS_PAGE = "https://status.auth0.com"
TOKEN_ENDPOINT = "token"
SCOPES = "create:client_grants, read:client_grants, update:client_grants"


@dataclass(frozen=True)
class Diagnosis:
    """`detail`: what happened, with where; `fix`: what the operator should do about it."""

    detail: str
    fix: str
    # True when the tenant refused who we are (credentials, scopes): retrying cannot help.
    credentials: bool = False


def diagnose(exc: Auth0Error, settings: Settings) -> Diagnosis:
    """The cause and fix of `exc`, raised by a call to `settings`' tenant."""
    if isinstance(exc, NetworkError):
        return _network(exc, settings)
    if isinstance(exc, RateLimited):
        return Diagnosis(
            f"{exc.message} (the tenant's rate limit is spent)",
            "wait for the limit to refill; other applications of the tenant may be spending it",
        )
    if isinstance(exc, UpstreamError):
        return _upstream(exc)
    if exc.endpoint == TOKEN_ENDPOINT:
        return _token_refused(exc, settings)
    if isinstance(exc, Unauthorized):
        what = "AUTH0_TOKEN / AUTH0_TOKEN_FILE" if settings.auth0_token else "AUTH0_AUDIENCE"
        return Diagnosis(
            f"{exc.message} (the tenant rejected the worker's token)",
            f"check {what}: the token must be a Management API token of this tenant, unexpired",
            credentials=True,
        )
    if isinstance(exc, Forbidden):
        return Diagnosis(
            f"{exc.message} (the token lacks a scope)",
            f"grant the application the scopes {SCOPES} under Applications → APIs → "
            "Auth0 Management API → Machine to Machine Applications",
            credentials=True,
        )
    if isinstance(exc, NotFound):
        return Diagnosis(
            f"{exc.message} (no Management API at AUTH0_DOMAIN)",
            "check AUTH0_DOMAIN: it must be the tenant's domain (tenant.eu.auth0.com)",
        )
    return Diagnosis(exc.message, "see the tenant's logs (Monitoring → Logs) for the call")


def _network(exc: NetworkError, settings: Settings) -> Diagnosis:
    where = exc.target or settings.auth0_base_url
    proxy = tenant_proxy(settings)
    via = f" (through the proxy {proxy_address(proxy)})" if proxy else ""
    if exc.cause == "proxy":
        variable = "HTTPS_PROXY" if settings.auth0_base_url.startswith("https") else "HTTP_PROXY"
        return Diagnosis(
            f"{exc.message}: the proxy {proxy_address(proxy or '')} did not connect us to {where}",
            f"check {variable} (host, port, user and password) and that the proxy lets "
            f"{where} through; hosts reached directly belong in NO_PROXY",
        )
    if exc.cause == "dns":
        return Diagnosis(
            f"{exc.message}: no address for the host name",
            "check the spelling of AUTH0_DOMAIN (your tenant's domain, e.g. "
            "tenant.eu.auth0.com) and this host's DNS; behind an egress proxy set HTTPS_PROXY",
        )
    if exc.cause == "refused":
        return Diagnosis(
            f"{exc.message}{via}: nothing accepts connections there",
            f"check the host and port in AUTH0_DOMAIN ({where}) and any firewall on the way",
        )
    if exc.cause == "connect_timeout":
        return Diagnosis(
            f"{exc.message}{via} within {settings.grants_connect_timeout_s:g} s",
            f"a firewall may be dropping outbound HTTPS to {where}: open it, or set HTTPS_PROXY "
            "if this network only goes out through a proxy",
        )
    if exc.cause == "tls":
        return Diagnosis(
            f"{exc.message}{via}: the certificate was not accepted",
            "check that AUTH0_DOMAIN is the tenant's own host name; a proxy or firewall that "
            "inspects TLS must let the tenant's traffic through untouched",
        )
    if exc.cause in ("read_timeout", "dropped"):
        return Diagnosis(
            f"{exc.message}{via}",
            f"the tenant or the network to it is slow or failing: see {STATUS_PAGE}; "
            "GRANTS_READ_TIMEOUT_S sets how long an answer is awaited",
        )
    return Diagnosis(f"{exc.message}{via}", f"check AUTH0_DOMAIN ({where}) and the network")


def _upstream(exc: UpstreamError) -> Diagnosis:
    status = exc.http_status
    if status is not None and status >= 500:
        return Diagnosis(
            f"{exc.message} (the tenant or Auth0 is failing)",
            f"nothing to fix here: see {STATUS_PAGE} and try again when the tenant answers",
        )
    if status is not None and 300 <= status < 400:
        return Diagnosis(
            exc.message,
            "AUTH0_DOMAIN answers with a redirect: set it to the tenant's domain "
            "(tenant.eu.auth0.com), not a web site in front of it",
        )
    return Diagnosis(exc.message, f"the tenant answered slowly or not at all: see {STATUS_PAGE}")


def _token_refused(exc: Auth0Error, settings: Settings) -> Diagnosis:
    if exc.http_status == 404:
        return Diagnosis(
            f"{exc.message} (no /oauth/token at AUTH0_DOMAIN)",
            "check AUTH0_DOMAIN: it must be the tenant's domain (tenant.eu.auth0.com)",
        )
    if isinstance(exc, Forbidden):
        return Diagnosis(
            f"{exc.message} (the application may not call the Management API)",
            "authorize the application for the Auth0 Management API (Applications → APIs → "
            f"Auth0 Management API → Machine to Machine Applications) with {SCOPES}; check "
            "AUTH0_AUDIENCE if set",
            credentials=True,
        )
    secret = (
        "AUTH0_CLIENT_SECRET_FILE" if settings.auth0_client_secret_file else ("AUTH0_CLIENT_SECRET")
    )
    return Diagnosis(
        f"{exc.message} (the tenant refused the client credentials)",
        f"check AUTH0_CLIENT_ID / {secret}, and that the application allows the Client "
        "Credentials grant",
        credentials=True,
    )
