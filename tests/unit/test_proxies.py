"""Which proxy carries a call to the tenant: the standard variables, read as curl reads them."""

from __future__ import annotations

import pytest

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.proxies import proxy_address, proxy_for
from grant_worker.tasks.auth0.session import make_session

PROXY = "http://user:pw@proxy.corp:3128"


@pytest.mark.parametrize(
    ("url", "no_proxy", "expected"),
    [
        ("https://acme.eu.auth0.com", None, PROXY),
        ("https://acme.eu.auth0.com", "auth0.com", None),
        ("https://acme.eu.auth0.com", ".auth0.com", None),
        ("https://acme.eu.auth0.com", "*.auth0.com", None),
        ("https://acme.eu.auth0.com", "*", None),
        ("https://acme.eu.auth0.com", "notauth0.com, other.org", PROXY),
        ("https://acme.eu.auth0.com", "acme.eu.auth0.com:8443", PROXY),
        ("https://acme.eu.auth0.com", "acme.eu.auth0.com:443", None),
        ("https://10.1.2.3:8443", "10.0.0.0/8", None),
        ("https://10.1.2.3:8443", "192.168.0.0/16", PROXY),
        ("https://[::1]:8443", "::1", None),
    ],
)
def test_https_proxy_and_no_proxy(url: str, no_proxy: str | None, expected: str | None) -> None:
    assert proxy_for(url, https_proxy=PROXY, http_proxy=None, no_proxy=no_proxy) == expected


def test_the_tenants_scheme_picks_the_variable() -> None:
    assert (
        proxy_for("http://127.0.0.1:8787", https_proxy=PROXY, http_proxy=None, no_proxy=None)
        is None
    )
    assert (
        proxy_for("http://127.0.0.1:8787", https_proxy=None, http_proxy="p:3128", no_proxy=None)
        == "http://p:3128"
    )


def test_a_proxy_is_shown_without_its_credentials() -> None:
    assert proxy_address(PROXY) == "proxy.corp:3128"


def test_the_session_takes_the_proxy_from_the_settings_in_either_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", PROXY)
    monkeypatch.setenv("NO_PROXY", "example.org")
    settings = Settings(_env_file=None, auth0_domain="acme.eu.auth0.com")  # type: ignore[call-arg]
    assert make_session(settings).proxies == {"https": PROXY}
    assert PROXY not in repr(settings)
