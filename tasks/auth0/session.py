"""The HTTP session to the tenant: pooled keep-alive connections, no hidden retries, one host.

- The pool keeps at least GRANTS_CONCURRENCY connections (one per worker thread, plus the token
  request), so threads do not open and close connections under load.
- urllib3 retries nothing (`Retry(total=0)`): every retry is explicit, in `tasks.flow.retry_policy`,
  where it is counted against the budget and never repeats a create behind our back.
- Only `settings.auth0_base_url` is reachable: every other URL, including the target of a
  redirect, meets an adapter that refuses to send. Redirects are not followed anyway
  (`tasks.auth0.api` sends with `allow_redirects=False`).
- TLS verification is always on, and the process environment is not consulted (`trust_env` is
  off): no `.netrc` credentials replacing our bearer token, no CA bundle swapped in from
  outside. An egress proxy comes from the settings' `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`
  (`tasks.auth0.proxies`), read once at the entry point like every setting. Timeouts are passed
  on every call by `tasks.auth0.api`.
- No cookies are kept: every call stands on its bearer token alone, whatever the tenant sets.

`send` is how a call goes out: what `Session.request` does for such a session, without the steps
the session has turned off.
"""

from __future__ import annotations

from collections.abc import Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from requests.hooks import dispatch_hook
from requests.structures import CaseInsensitiveDict
from urllib3.util.retry import Retry

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.proxies import proxy_for

# Connection pools the adapter keeps (one per host; we talk to one).
_POOLS = 2


class OffTenantRefused(requests.exceptions.InvalidURL):
    """Raised when something tries to send a request to a host other than the tenant."""


class _RefusingAdapter(HTTPAdapter):
    """Mounted on every URL that is not the tenant's: sends nothing."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        raise OffTenantRefused("refusing to send to a host other than the configured tenant")


def tenant_proxy(settings: Settings) -> str | None:
    """The proxy the calls to the tenant go through, or None (direct)."""

    def value(secret: SecretStr | None) -> str | None:
        return secret.get_secret_value() if secret is not None else None

    return proxy_for(
        settings.auth0_base_url,
        https_proxy=value(settings.https_proxy),
        http_proxy=value(settings.http_proxy),
        no_proxy=settings.no_proxy,
    )


def make_session(settings: Settings) -> requests.Session:
    """A session that can reach only `settings.auth0_base_url`.

    Raises `ValueError` when AUTH0_DOMAIN is not set.
    """
    base_url = settings.auth0_base_url
    if not base_url:
        raise ValueError("AUTH0_DOMAIN is required")
    session = requests.Session()
    session.trust_env = False
    session.verify = True
    session.max_redirects = 0
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    pool_size = settings.grants_concurrency + 1
    tenant = HTTPAdapter(
        pool_connections=_POOLS,
        pool_maxsize=pool_size,
        max_retries=Retry(total=0, redirect=0, raise_on_redirect=False, raise_on_status=False),
    )
    refuse = _RefusingAdapter()
    session.mount("http://", refuse)
    session.mount("https://", refuse)
    # The trailing slash keeps `https://tenant.example.com.evil.net` off the tenant's adapter.
    session.mount(f"{base_url}/", tenant)
    proxy = tenant_proxy(settings)
    if proxy is not None:
        session.proxies = {urlsplit(base_url).scheme: proxy}
    session.headers.update({"Accept": "application/json", "User-Agent": "grant-worker/0.1"})
    return session


# Distinct URLs remembered by `_Prepared`: the ones a worker sends to without parameters (the
# create, the token) and the first of the ones naming a grant; past the bound, nothing is added.
_MAX_PREPARED_URLS = 1024
_prepared_urls: dict[str, str] = {}


class _Prepared(requests.PreparedRequest):
    """A prepared request that reuses the URL prepared for the same text before: parsing,
    IDNA and requoting give the same answer every time, and cost a fair part of a call's CPU."""

    def prepare_url(self, url: Any, params: Any) -> None:
        if params or not isinstance(url, str):
            super().prepare_url(url, params)
            return
        known = _prepared_urls.get(url)
        if known is not None:
            self.url = known
            return
        super().prepare_url(url, params)
        if self.url is not None and len(_prepared_urls) < _MAX_PREPARED_URLS:
            _prepared_urls[url] = self.url


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout: tuple[float, float],
    json: Any = None,
    data: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> requests.Response:
    """`session.request(method, url, ..., allow_redirects=False)`, for less CPU per call.

    For a session of `make_session` the answer is the same: the request is prepared with the
    session's headers under `headers`, sent through the adapter mounted for `url` (the tenant's,
    or the refusing one) with the session's proxies, TLS verification and no redirect, the
    session's response hooks see the answer (the activity counter is one), and the body is read
    before returning. What else `Session.request` would apply is turned off on such a session:
    the environment (`trust_env`), cookies (none kept, so none sent), authentication and default
    parameters; its redirect bookkeeping (`Response.next`) is not kept. Merging those settings
    costs `Session.request` more CPU than the rest of the call (runtime Protocol checks in
    requests), so they are skipped where they hold nothing, and a session that does hold any of
    them is sent through `Session.request` as it is.
    """
    if (
        session.trust_env
        or session.auth is not None
        or session.params
        or len(session.cookies)
        or set(session.hooks) != {"response"}
    ):
        return session.request(
            method,
            url,
            json=json,
            data=data,
            params=params,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        )
    merged: CaseInsensitiveDict[Any] = CaseInsensitiveDict()
    merged.update(session.headers)
    if headers:
        merged.update(headers)
    prepared = _Prepared()
    prepared.prepare(
        method=method,
        url=url,
        headers={key: value for key, value in merged.items() if value is not None},
        data=data,
        params=params,
        json=json,
    )
    adapter = session.get_adapter(url=prepared.url or url)
    options: dict[str, Any] = {
        "stream": False,
        "timeout": timeout,
        "verify": session.verify if session.verify is not None else True,
        "cert": session.cert,
        "proxies": dict(session.proxies),
    }
    response = adapter.send(prepared, **options)
    response = dispatch_hook("response", session.hooks, response, **options)
    response.content  # noqa: B018 -- read the body now, as `Session.request` does
    return response
