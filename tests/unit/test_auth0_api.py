"""The Management API client over a scripted transport: translation of every answer, the token.

`ScriptedTenant` is a requests transport adapter (a test double of the network, not of project
code) mounted on the real session of `make_session`, so the session's own rules run too.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.api import (
    MIN_READ_TIMEOUT_S,
    CallHooks,
    ManagementApi,
    make_api,
    matches,
)
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.errors import (
    BadRequest,
    NetworkError,
    Unauthorized,
    UpstreamError,
)
from grant_worker.tasks.messages.models import Grant

BASE = "https://tenant.example.com"
SECRET = "client-secret-never-shown"
NOW = 1_800_000_000.0


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedTenant(HTTPAdapter):
    """Answers each (method, path) from its own queue; the last reply of a queue repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[tuple[str, str], deque[Reply | Exception]] = defaultdict(deque)
        self.sent: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def script(self, method: str, path: str, *replies: Reply | Exception) -> ScriptedTenant:
        self.routes[(method, path)].extend(replies)
        return self

    def calls(self, method: str, path: str) -> list[requests.PreparedRequest]:
        return [r for r in self.sent if r.method == method and urlsplit(r.url or "").path == path]

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(request)
        self.timeouts.append(kwargs.get("timeout"))
        key = (request.method or "", urlsplit(request.url or "").path)
        queue = self.routes[key]
        if not queue:
            raise AssertionError(f"unscripted call {key}")
        reply = queue.popleft() if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        response = requests.Response()
        response.status_code = reply.status
        response.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json; charset=utf-8", **reply.headers}
        )
        body = reply.body
        response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.url = request.url or ""
        response.request = request
        return response


def token_reply(token: str = "tok-1", expires_in: int = 86400) -> Reply:
    return Reply(200, {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"})


def grant_body(**extra: Any) -> dict[str, Any]:
    return {
        "id": "cgr_0000000000000001",
        "client_id": "svc-1",
        "audience": "https://api.example.com/",
        "scope": ["read:x"],
        "subject_type": "client",
        **extra,
    }


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth0_domain": BASE,
        "auth0_client_id": "grant-worker",
        "auth0_client_secret": SECRET,
        **overrides,
    }
    return Settings(**values)


def api_over(tenant: ScriptedTenant, **overrides: Any) -> ManagementApi:
    config = settings(**overrides)
    session = make_session(config)
    session.mount(f"{BASE}/", tenant)
    return make_api(config, session)


@pytest.fixture
def tenant() -> ScriptedTenant:
    return ScriptedTenant().script("POST", "/oauth/token", token_reply())


def test_a_grant_without_subject_type_matches_the_client_subject_type() -> None:
    grant = Grant(id="cgr_1", client_id="svc-1", audience="https://a/")
    assert matches(grant, "https://a/", client_id="svc-1", subject_type="client")
    assert not matches(grant, "https://a/", client_id="svc-1", subject_type="user")
    assert not matches(grant, "https://b/", client_id="svc-1")


# -- calls over the scripted transport ------------------------------------------------------------


def test_create_posts_the_body_with_a_bearer_token_and_returns_the_grant(
    tenant: ScriptedTenant,
) -> None:
    tenant.script("POST", "/api/v2/client-grants", Reply(201, grant_body()))
    grant = api_over(tenant).create_grant({"client_id": "svc-1", "audience": "https://api/"})
    assert grant.id == "cgr_0000000000000001"
    (post,) = tenant.calls("POST", "/api/v2/client-grants")
    assert post.headers["Authorization"] == "Bearer tok-1"
    assert json.loads(post.body or b"") == {"client_id": "svc-1", "audience": "https://api/"}


def test_the_token_is_requested_form_encoded_with_client_credentials(
    tenant: ScriptedTenant,
) -> None:
    tenant.script("GET", "/api/v2/client-grants/cgr_1", Reply(200, grant_body(id="cgr_1")))
    api_over(tenant).get_grant("cgr_1")
    (token_call,) = tenant.calls("POST", "/oauth/token")
    assert token_call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(str(token_call.body)) == {
        "grant_type": ["client_credentials"],
        "client_id": ["grant-worker"],
        "client_secret": [SECRET],
        "audience": ["https://tenant.example.com/api/v2/"],
    }


def test_one_token_serves_many_calls(tenant: ScriptedTenant) -> None:
    tenant.script("GET", "/api/v2/client-grants/cgr_1", Reply(200, grant_body(id="cgr_1")))
    api = api_over(tenant)
    for _ in range(5):
        api.get_grant("cgr_1")
    assert len(tenant.calls("POST", "/oauth/token")) == 1


def test_a_401_fetches_a_new_token_once_and_repeats_the_call() -> None:
    tenant = ScriptedTenant().script(
        "POST", "/oauth/token", token_reply("tok-old"), token_reply("tok-new")
    )
    tenant.script(
        "POST",
        "/api/v2/client-grants",
        Reply(401, {"statusCode": 401, "error": "Unauthorized", "message": "Invalid token"}),
        Reply(201, grant_body()),
    )
    sends: list[str] = []
    api_over(tenant).create_grant({"audience": "x"}, before_send=lambda: sends.append("sent"))
    posts = tenant.calls("POST", "/api/v2/client-grants")
    assert [p.headers["Authorization"] for p in posts] == ["Bearer tok-old", "Bearer tok-new"]
    assert sends == ["sent", "sent"]


def test_a_second_401_after_the_refresh_is_final() -> None:
    tenant = ScriptedTenant().script("POST", "/oauth/token", token_reply("a"), token_reply("b"))
    tenant.script("GET", "/api/v2/client-grants/cgr_1", Reply(401, {"message": "Invalid token"}))
    with pytest.raises(Unauthorized):
        api_over(tenant).get_grant("cgr_1")
    assert len(tenant.calls("GET", "/api/v2/client-grants/cgr_1")) == 2


def test_a_401_with_a_static_token_is_final_at_once() -> None:
    tenant = ScriptedTenant()
    tenant.script("GET", "/api/v2/client-grants/cgr_1", Reply(401, {"message": "Invalid token"}))
    api = api_over(tenant, auth0_token="static-token-value")
    with pytest.raises(Unauthorized) as caught:
        api.get_grant("cgr_1")
    assert len(tenant.sent) == 1
    assert "static-token-value" not in str(caught.value)


def test_refused_credentials_are_final_and_do_not_show_the_secret() -> None:
    refused = Reply(401, {"error": "access_denied", "error_description": "Unauthorized"})
    tenant = ScriptedTenant().script("POST", "/oauth/token", refused)
    with pytest.raises(Unauthorized) as caught:
        api_over(tenant).get_grant("cgr_1")
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_a_token_answer_without_access_token_is_an_upstream_error() -> None:
    tenant = ScriptedTenant().script("POST", "/oauth/token", Reply(200, {"token_type": "Bearer"}))
    with pytest.raises(UpstreamError):
        api_over(tenant).get_grant("cgr_1")


def test_a_created_answer_that_is_not_a_grant_may_have_created_it(tenant: ScriptedTenant) -> None:
    tenant.script("POST", "/api/v2/client-grants", Reply(201, b"<html>oops</html>"))
    with pytest.raises(UpstreamError) as caught:
        api_over(tenant).create_grant({"audience": "x"})
    assert caught.value.ambiguous


def test_update_patches_the_grant_by_its_quoted_id(tenant: ScriptedTenant) -> None:
    tenant.script("PATCH", "/api/v2/client-grants/cgr_a%2Fb", Reply(200, grant_body(id="a/b")))
    grant = api_over(tenant).update_grant("cgr_a/b", {"scope": ["x"]})
    assert grant.id == "a/b"
    (patch,) = tenant.calls("PATCH", "/api/v2/client-grants/cgr_a%2Fb")
    assert json.loads(patch.body or b"") == {"scope": ["x"]}


def test_find_grants_follows_checkpoints_until_next_is_absent(tenant: ScriptedTenant) -> None:
    page1 = {"client_grants": [grant_body(id="cgr_1")], "next": "cursor-2"}
    page2 = {"client_grants": [grant_body(id="cgr_2")], "next": "cursor-3"}
    page3 = {"client_grants": [grant_body(id="cgr_3")]}
    tenant.script("GET", "/api/v2/client-grants", Reply(200, page1), Reply(200, page2))
    tenant.script("GET", "/api/v2/client-grants", Reply(200, page3))
    grants = api_over(tenant).find_grants(audience="https://api.example.com/", client_id="svc-1")
    assert [g.id for g in grants] == ["cgr_1", "cgr_2", "cgr_3"]
    queries = [
        parse_qs(urlsplit(r.url or "").query) for r in tenant.calls("GET", "/api/v2/client-grants")
    ]
    assert [q.get("from") for q in queries] == [None, ["cursor-2"], ["cursor-3"]]
    assert all(q["take"] == ["100"] and q["client_id"] == ["svc-1"] for q in queries)


def test_find_grants_filters_subject_type_itself_when_the_tenant_does_not(
    tenant: ScriptedTenant,
) -> None:
    listed = [
        grant_body(id="cgr_user", subject_type="user"),
        {k: v for k, v in grant_body(id="cgr_old").items() if k != "subject_type"},
    ]
    tenant.script("GET", "/api/v2/client-grants", Reply(200, {"client_grants": listed}))
    api = api_over(tenant)
    found = api.find_grants(audience="https://api.example.com/", subject_type="client")
    assert [g.id for g in found] == ["cgr_old"]


def test_find_grants_accepts_a_bare_array_from_older_tenants(tenant: ScriptedTenant) -> None:
    tenant.script("GET", "/api/v2/client-grants", Reply(200, [grant_body()]))
    assert len(api_over(tenant).find_grants(audience="https://api.example.com/")) == 1


def test_find_grants_stops_on_a_checkpoint_it_has_seen_before(tenant: ScriptedTenant) -> None:
    looping = {"client_grants": [], "next": "same"}
    tenant.script("GET", "/api/v2/client-grants", Reply(200, looping))
    assert api_over(tenant).find_grants(audience="https://api.example.com/") == []
    assert len(tenant.calls("GET", "/api/v2/client-grants")) == 2


def test_a_network_failure_is_translated_with_its_cause_kept(tenant: ScriptedTenant) -> None:
    timeout = requests.exceptions.ReadTimeout("read timed out")
    tenant.script("POST", "/api/v2/client-grants", timeout)
    with pytest.raises(NetworkError) as caught:
        api_over(tenant).create_grant({"audience": "x"})
    assert caught.value.ambiguous
    assert caught.value.__cause__ is timeout


def test_the_api_repr_shows_no_secret(tenant: ScriptedTenant) -> None:
    tenant.script("GET", "/api/v2/client-grants/cgr_1", Reply(200, grant_body(id="cgr_1")))
    api = api_over(tenant)
    api.get_grant("cgr_1")
    assert SECRET not in repr(api) and "tok-1" not in repr(api)


def test_every_call_is_sent_with_the_configured_timeouts_and_no_redirects(
    tenant: ScriptedTenant,
) -> None:
    tenant.script("GET", "/api/v2/client-grants/cgr_1", Reply(200, grant_body(id="cgr_1")))
    api_over(tenant, grants_connect_timeout_s=1.5, grants_read_timeout_s=9.0).get_grant("cgr_1")
    assert tenant.timeouts == [(1.5, 9.0), (1.5, 9.0)]


def test_the_read_timeout_shrinks_to_the_budget_left_but_not_below_a_floor(
    tenant: ScriptedTenant,
) -> None:
    tenant.script("GET", "/api/v2/client-grants/cgr_1", Reply(200, grant_body(id="cgr_1")))
    left = iter([5.0, 0.1])
    api = api_over(tenant, grants_read_timeout_s=9.0).with_hooks(
        CallHooks(time_left=lambda: next(left))
    )
    api.get_grant("cgr_1")
    assert [t[1] for t in tenant.timeouts] == [5.0, MIN_READ_TIMEOUT_S]


def test_an_error_names_the_call_that_failed(tenant: ScriptedTenant) -> None:
    tenant.script("POST", "/api/v2/client-grants", Reply(400, {"message": "bad"}))
    with pytest.raises(BadRequest) as caught:
        api_over(tenant).create_grant({"audience": "x"})
    assert caught.value.endpoint == "create_grant"


def test_a_token_failure_during_a_call_names_the_token_request() -> None:
    tenant = ScriptedTenant().script("POST", "/oauth/token", Reply(503, {}))
    with pytest.raises(UpstreamError) as caught:
        api_over(tenant).create_grant({"audience": "x"})
    assert caught.value.endpoint == "token"
    assert not caught.value.ambiguous


def test_hooks_see_every_call_before_it_is_sent(tenant: ScriptedTenant) -> None:
    tenant.script("GET", "/api/v2/client-grants/cgr_1", Reply(200, grant_body(id="cgr_1")))
    seen: list[tuple[str, str, int]] = []
    api = api_over(tenant).with_hooks(
        CallHooks(
            before_call=lambda e: seen.append(("slot", e, len(tenant.sent))),
            on_call=lambda e: seen.append(("call", e, len(tenant.sent))),
        )
    )
    api.get_grant("cgr_1")
    assert seen == [
        ("slot", "token", 0),
        ("call", "token", 0),
        ("slot", "get_grant", 1),
        ("call", "get_grant", 1),
    ]
