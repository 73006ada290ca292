"""The dashboard's defences: the bind rule, the login, CSRF, escaping, no secrets on a page."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from starlette.testclient import TestClient

from grant_worker.tasks.keys import Keys
from grant_worker.worker.cli.main import cli
from grant_worker.worker.dashboard.app import create_app
from grant_worker.worker.dashboard.security import BindRefused
from tests.dashboard.conftest import BASE_URL, CLIENT_SECRET, DASHBOARD_TOKEN, grant_request

PAGES = ("/", "/batches", "/dead", "/search?request_id=x-1")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_other_addresses_refuse_to_start_without_a_token(
    host: str, dashboard_settings: Callable[..., Any]
) -> None:
    with pytest.raises(BindRefused, match="GRANTS_DASHBOARD_TOKEN"):
        create_app(dashboard_settings(), host=host)
    create_app(dashboard_settings(grants_dashboard_token=DASHBOARD_TOKEN), host=host)


def test_the_command_exits_2_naming_the_token(redis_url: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["dashboard", "--host", "0.0.0.0"],
        env={"REDIS_URL": redis_url, "GRANTS_DASHBOARD_TOKEN": ""},
    )

    assert result.exit_code == 2
    assert "GRANTS_DASHBOARD_TOKEN" in result.output


def test_with_a_token_every_request_needs_the_login(
    browse: Callable[..., TestClient], record: Callable[..., Any], redis_client: redis.Redis
) -> None:
    record("t-1", "failed", code="not_found", original=grant_request("t-1", "u"))
    client = browse(grants_dashboard_token=DASHBOARD_TOKEN)

    for path in PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
    assert client.get("/", headers={"HX-Request": "true"}).status_code == 401
    assert client.post("/dead/act", data={"action": "purge", "confirm": "yes"}).status_code == 401

    login_page = client.get("/login").text
    wrong = client.post("/login", data={"csrf": csrf_of(login_page), "token": "guess"})
    assert wrong.status_code == 401
    assert client.get("/dead", follow_redirects=False).status_code == 303

    right = client.post(
        "/login",
        data={"csrf": csrf_of(client.get("/login").text), "token": DASHBOARD_TOKEN},
        follow_redirects=False,
    )
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/dead").status_code == 200
    assert "t-1" in client.get("/dead").text


def test_a_forged_cross_site_post_changes_nothing(
    browse: Callable[..., TestClient], record: Callable[..., Any], redis_client: redis.Redis
) -> None:
    record("f-1", "failed", code="not_found", original=grant_request("f-1", "u"))
    client = browse()
    dead_key = Keys(client.app.state.dashboard.settings.grants_key_prefix).dead  # type: ignore[attr-defined]
    page = client.get("/dead").text
    entry_id = re.search(r'name="id" value="([0-9]+-[0-9]+)"', page).group(1)  # type: ignore[union-attr]
    purge = {"action": "purge", "confirm": "yes", "id": entry_id}

    # A page on another site cannot read our token: it posts without one, or with a guess.
    # (SameSite=Strict keeps the browser from sending our cookie along at all.)
    without = TestClient(client.app, base_url=BASE_URL).post("/dead/act", data=purge)
    guessed = client.post("/dead/act", data={**purge, "csrf": "guess"})
    # Even holding a valid token, a request the browser marks as cross-site is refused.
    from_elsewhere = client.post(
        "/dead/act",
        data={**purge, "csrf": csrf_of(page)},
        headers={"Origin": "https://evil.example"},
    )
    fetched_cross_site = client.post(
        "/dead/act", data={**purge, "csrf": csrf_of(page)}, headers={"Sec-Fetch-Site": "cross-site"}
    )

    for answer in (without, guessed, from_elsewhere, fetched_cross_site):
        assert answer.status_code == 403
    assert redis_client.xlen(dead_key) == 1

    genuine = client.post("/dead/act", data={**purge, "csrf": csrf_of(page)})
    assert genuine.status_code == 200 and "purged 1 dead letters" in genuine.text
    assert redis_client.xlen(dead_key) == 0


def test_an_action_needs_its_confirmation_step(
    browse: Callable[..., TestClient], record: Callable[..., Any], redis_client: redis.Redis
) -> None:
    record("c-1", "failed", code="not_found", original=grant_request("c-1", "u"))
    client = browse()
    page = client.get("/dead").text
    entry_id = re.search(r'name="id" value="([0-9]+-[0-9]+)"', page).group(1)  # type: ignore[union-attr]

    unconfirmed = client.post(
        "/dead/act", data={"action": "purge", "id": entry_id, "csrf": csrf_of(page)}
    )
    asked = client.post(
        "/dead/confirm", data={"action": "purge", "id": entry_id, "csrf": csrf_of(page)}
    )

    assert unconfirmed.status_code == 400
    assert "Purge 1 dead letter?" in asked.text and 'name="confirm" value="yes"' in asked.text
    assert redis_client.xlen(Keys(client.app.state.dashboard.settings.grants_key_prefix).dead) == 1  # type: ignore[attr-defined]


def test_markup_inside_request_fields_is_shown_as_text(
    browse: Callable[..., TestClient], record: Callable[..., Any]
) -> None:
    script = "<script>alert('owned')</script>"
    image = '<img src=x onerror="alert(1)">'
    record("x-1", "rejected", batch_id=image, code="invalid_request", original=script)
    record("x-2", "failed", batch_id=image, code="bad_request", original={"grant": script})
    client = browse()

    pages = [
        client.get(path).text
        for path in ("/", "/batches", "/dead", "/search?request_id=x-1", "/batches/" + image)
    ]

    for text in pages:
        assert script not in text and image not in text
    dead = pages[2]
    assert "&lt;script&gt;" in dead or "\\u003cscript\\u003e" in dead
    assert "&lt;img src=x onerror=" in dead
    assert "&lt;img src=x onerror=" in pages[1]


def test_no_secret_appears_on_any_page(
    browse: Callable[..., TestClient], record: Callable[..., Any]
) -> None:
    record("n-1", "failed", code="not_found", original=grant_request("n-1", "u"))
    client = browse(grants_dashboard_token=DASHBOARD_TOKEN, auth0_token="static-token-never-shown")
    login = client.get("/login").text
    client.post("/login", data={"csrf": csrf_of(login), "token": DASHBOARD_TOKEN})

    for path in (*PAGES, "/batches/x", "/search?request_id=n-1", "/login"):
        text = client.get(path).text
        for secret in (CLIENT_SECRET, DASHBOARD_TOKEN, "static-token-never-shown"):
            assert secret not in text, (path, secret)


def test_a_foreign_host_name_is_refused_on_loopback(browse: Callable[..., TestClient]) -> None:
    # A DNS name rebound to 127.0.0.1 must not reach the dashboard from a web page.
    client = browse()

    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400
    assert "frame-ancestors 'none'" in client.get("/").headers["content-security-policy"]
