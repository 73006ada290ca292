"""The session to the tenant: one host only, pooled, no hidden retries, TLS verified."""

from __future__ import annotations

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests.cookies import MockRequest, create_cookie

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.session import OffTenantRefused, make_session


def settings(**overrides: object) -> Settings:
    return Settings(auth0_domain="tenant.example.com", **overrides)  # type: ignore[arg-type]


def tenant_adapter(session: requests.Session) -> HTTPAdapter:
    adapter = session.get_adapter("https://tenant.example.com/api/v2/client-grants")
    assert isinstance(adapter, HTTPAdapter)
    return adapter


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.net/oauth/token",
        "https://tenant.example.com.evil.example.net/api/v2/client-grants",
        "http://tenant.example.com/api/v2/client-grants",
    ],
)
def test_nothing_is_sent_to_any_host_but_the_tenant(url: str) -> None:
    session = make_session(settings())
    with pytest.raises(OffTenantRefused):
        session.get(url, timeout=1)


def test_the_pool_holds_a_connection_per_worker_thread() -> None:
    adapter = tenant_adapter(make_session(settings(grants_concurrency=24)))
    assert adapter._pool_maxsize >= 24  # type: ignore[attr-defined]


def test_the_transport_retries_nothing_by_itself() -> None:
    retries = tenant_adapter(make_session(settings())).max_retries
    assert retries.total == 0
    assert not retries.raise_on_redirect


def test_tls_is_verified_and_the_environment_is_not_consulted() -> None:
    session = make_session(settings())
    assert session.verify is True
    assert session.trust_env is False
    assert session.max_redirects == 0


def test_a_session_needs_the_tenant() -> None:
    with pytest.raises(ValueError, match="AUTH0_DOMAIN"):
        make_session(Settings(auth0_domain=""))


def test_no_cookie_the_tenant_sets_is_kept() -> None:
    session = make_session(settings())
    cookie = create_cookie("did", "abc", domain="tenant.example.com")
    request = MockRequest(
        requests.Request("GET", "https://tenant.example.com/oauth/token").prepare()
    )
    assert not session.cookies.get_policy().set_ok(cookie, request)
