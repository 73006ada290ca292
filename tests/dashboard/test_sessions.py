"""Dashboard sessions end when they should (logout, a token change), login guessing is slow
across requests, a TLS proxy in front works, notices stay small, `[::1]` binds."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from grant_worker.tasks.keys import Keys
from grant_worker.worker.dashboard.app import create_app
from grant_worker.worker.dashboard.security import check_bind
from tests.dashboard.conftest import DASHBOARD_TOKEN, grant_request
from tests.dashboard.test_security import csrf_of


def logged_in(client: TestClient, token: str = DASHBOARD_TOKEN) -> TestClient:
    csrf = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"csrf": csrf, "token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def test_a_cookie_copied_before_logout_reads_nothing_after_it(
    browse: Callable[..., TestClient], record: Callable[..., Any], redis_client: redis.Redis
) -> None:
    record("s-1", "failed", code="not_found", original=grant_request("s-1", "u"))
    client = logged_in(browse(grants_dashboard_token=DASHBOARD_TOKEN))
    page = client.get("/dead").text
    copied = dict(client.cookies)
    entry_id = re.search(r'name="id" value="([0-9]+-[0-9]+)"', page).group(1)  # type: ignore[union-attr]

    assert client.post("/logout", data={"csrf": csrf_of(page)}).status_code == 200

    thief = TestClient(client.app, base_url=str(client.base_url), cookies=copied)
    assert thief.get("/dead", follow_redirects=False).status_code == 303
    purge = {"action": "purge", "confirm": "yes", "id": entry_id, "csrf": csrf_of(page)}
    assert thief.post("/dead/act", data=purge).status_code == 401
    keys = Keys(client.app.state.dashboard.settings.grants_key_prefix)  # type: ignore[attr-defined]
    assert redis_client.xlen(keys.dead) == 1


def test_a_token_change_ends_every_session(
    browse: Callable[..., TestClient], dashboard_settings: Callable[..., Any]
) -> None:
    client = logged_in(browse(grants_dashboard_token=DASHBOARD_TOKEN))
    assert client.get("/", follow_redirects=False).status_code == 200
    # The dashboard restarted with another token (same Redis, same prefix).
    changed = create_app(dashboard_settings(grants_dashboard_token="another-token-of-16-chars+"))
    store = changed.state.dashboard.sessions
    [sid] = _session_ids(client)
    assert store.current(sid, "another-token-of-16-chars+") is None
    assert client.get("/", follow_redirects=False).status_code == 303  # ended for good


def _session_ids(client: TestClient) -> list[str]:
    dashboard = client.app.state.dashboard  # type: ignore[attr-defined]
    pattern = Keys(dashboard.settings.grants_key_prefix).dashboard_session("*")
    prefix = pattern[:-1]
    return [key[len(prefix) :] for key in dashboard.redis.scan_iter(pattern)]


def test_parallel_wrong_guesses_are_throttled_across_requests_and_logged(
    browse: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = browse(grants_dashboard_token=DASHBOARD_TOKEN)
    csrf = csrf_of(client.get("/login").text)
    cookies = dict(client.cookies)

    async def guesses() -> list[int]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url=str(client.base_url), cookies=cookies
        ) as http:
            answers = await asyncio.gather(
                *(http.post("/login", data={"csrf": csrf, "token": f"guess-{n}"})
                  for n in range(20))
            )  # fmt: skip
        return [answer.status_code for answer in answers]

    with caplog.at_level("WARNING"):
        codes = asyncio.run(guesses())
    # However they are spread in time, the window's allowance is all that is ever compared.
    assert codes.count(401) <= 5, codes
    assert codes.count(429) >= 15, codes
    assert "dashboard login failed" in caplog.text
    # The right token too waits for the window to pass: guessing cannot race it.
    right = client.post("/login", data={"csrf": csrf, "token": DASHBOARD_TOKEN})
    assert right.status_code == 429


def test_a_token_of_white_space_is_refused(
    browse: Callable[..., TestClient], dashboard_settings: Callable[..., Any]
) -> None:
    with pytest.raises(ValueError, match="GRANTS_DASHBOARD_TOKEN"):
        check_bind("0.0.0.0", " " * 20)
    client = browse(grants_dashboard_token=" " * 16 + DASHBOARD_TOKEN)
    csrf = csrf_of(client.get("/login").text)
    assert client.post("/login", data={"csrf": csrf, "token": "  "}).status_code == 401


def test_behind_a_trusted_tls_proxy_login_and_posts_work_and_the_cookie_is_secure(
    browse: Callable[..., TestClient],
) -> None:
    client = browse(
        grants_dashboard_token=DASHBOARD_TOKEN, grants_dashboard_trusted_proxies="testclient"
    )
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9",
                 "Origin": "https://127.0.0.1:8808"}  # fmt: skip
    login_page = client.get("/login", headers=forwarded)
    # The cookie is `Secure`: the browser sends it over https to the proxy, which passes it on.
    cookie = login_page.headers["set-cookie"].split(";")[0]
    answer = client.post(
        "/login",
        data={"csrf": csrf_of(login_page.text), "token": DASHBOARD_TOKEN},
        headers={**forwarded, "Cookie": cookie},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert "secure" in answer.headers["set-cookie"].lower()


def test_a_replay_notice_of_many_long_ids_keeps_the_cookie_small(
    browse: Callable[..., TestClient], record: Callable[..., Any]
) -> None:
    ids = [f"{'n' * 120}-{i:03d}" for i in range(100)]
    for request_id in ids:
        record(request_id, "failed", code="not_found", original={"x": 1})
    client = browse()
    page = client.get("/dead").text
    entry_ids = re.findall(r'name="id" value="([0-9]+-[0-9]+)"', page)
    answer = client.post(
        "/dead/act",
        data={"action": "replay", "confirm": "yes", "id": entry_ids, "csrf": csrf_of(page)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert len(answer.headers["set-cookie"]) < 4096


def test_the_bracketed_loopback_address_binds() -> None:
    from grant_worker.worker.dashboard.security import bind_address

    check_bind("[::1]", None)
    assert bind_address("[::1]") == "::1"
    assert bind_address("127.0.0.1") == "127.0.0.1"


def test_idle_sessions_expire_in_redis(
    browse: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    client = logged_in(browse(grants_dashboard_token=DASHBOARD_TOKEN, grants_dashboard_idle_s=60))
    [sid] = _session_ids(client)
    key = Keys(client.app.state.dashboard.settings.grants_key_prefix).dashboard_session(sid)  # type: ignore[attr-defined]
    assert 0 < redis_client.ttl(key) <= 60
    redis_client.hset(key, "created_s", str(time.time() - 13 * 3600))
    assert client.get("/", follow_redirects=False).status_code == 303
