"""The session to the tenant: one host only, pooled, no hidden retries, TLS verified."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests.cookies import MockRequest, create_cookie
from requests.structures import CaseInsensitiveDict

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.session import OffTenantRefused, make_session, send


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


class Recording(HTTPAdapter):
    """Answers 200 to everything and keeps what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.sent.append((request, kwargs))
        response = requests.Response()
        response.status_code = 200
        response._content = b"{}"
        response.url = request.url or ""
        response.request = request
        response.headers = CaseInsensitiveDict({"Set-Cookie": "did=abc; Path=/"})
        return response


CALLS: list[dict[str, Any]] = [
    {"method": "POST", "json": {"client_id": "svc-1", "scope": ["a"]}},
    {"method": "POST", "data": {"grant_type": "client_credentials", "client_secret": "s"}},
    {"method": "GET", "params": {"audience": "https://api/", "take": "100"}},
    {"method": "DELETE"},
]


@pytest.mark.parametrize("call", CALLS)
def test_send_puts_on_the_wire_what_session_request_would(call: dict[str, Any]) -> None:
    def through(use_send: bool) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        session = make_session(settings(https_proxy="http://proxy.internal:3128"))
        adapter = Recording()
        session.mount("https://tenant.example.com/", adapter)
        url = "https://tenant.example.com/api/v2/client-grants"
        options = {k: v for k, v in call.items() if k != "method"}
        headers = {"Authorization": "Bearer tok"}
        for _ in range(2):  # a second call after a Set-Cookie answer
            if use_send:
                send(session, call["method"], url, timeout=(1, 2), headers=headers, **options)
            else:
                session.request(
                    call["method"],
                    url,
                    timeout=(1, 2),
                    headers=headers,
                    allow_redirects=False,
                    **options,
                )
        return adapter.sent[-1]

    (lean, lean_options), (full, full_options) = through(True), through(False)
    assert (lean.method, lean.url, lean.body) == (full.method, full.url, full.body)
    assert dict(lean.headers) == dict(full.headers)
    assert "Cookie" not in lean.headers
    assert lean_options == full_options
    assert lean_options["proxies"] == {"https": "http://proxy.internal:3128"}


def test_send_refuses_any_host_but_the_tenant() -> None:
    session = make_session(settings())
    with pytest.raises(OffTenantRefused):
        send(session, "GET", "https://evil.example.net/oauth/token", timeout=(1, 1))


def test_send_runs_the_session_response_hooks() -> None:
    session = make_session(settings())
    session.mount("https://tenant.example.com/", Recording())
    seen: list[tuple[int, str]] = []
    session.hooks["response"].append(
        lambda response, **_: seen.append((response.status_code, response.request.path_url))
    )
    send(session, "GET", "https://tenant.example.com/api/v2/clients", timeout=(1, 1))
    assert seen == [(200, "/api/v2/clients")]


def test_send_goes_through_session_request_for_a_session_with_more_to_apply() -> None:
    session = make_session(settings())
    adapter = Recording()
    session.mount("https://tenant.example.com/", adapter)
    session.auth = ("user", "pass")
    send(session, "GET", "https://tenant.example.com/api/v2/clients", timeout=(1, 1))
    assert adapter.sent[-1][0].headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "url",
    [
        "https://tenant.example.com/api/v2/client-grants",
        "https://tenant.example.com/api/v2/resource-servers/https%3A%2F%2Fapi%2F",
        "https://TENANT.example.com/api/v2/clients/svc 1?fields=a,b",
        "https://tenant.example.com/api/v2/clients/ümlaut",
    ],
)
def test_send_prepares_each_url_as_requests_does_the_first_time_and_after(url: str) -> None:
    session = make_session(settings())
    adapter = Recording()
    session.mount("https://tenant.example.com/", adapter)
    expected = requests.Request("GET", url).prepare().url
    for _ in range(2):
        send(session, "GET", url, timeout=(1, 1))
        assert adapter.sent[-1][0].url == expected
    send(session, "GET", url, timeout=(1, 1), params={"take": "1"})
    assert (
        adapter.sent[-1][0].url == requests.Request("GET", url, params={"take": "1"}).prepare().url
    )
