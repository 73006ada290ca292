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
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from config.settings import Settings
from tasks.auth0_api import (
    ManagementApi,
    make_api,
    management_error,
    matches,
    network_error,
    token_error,
)
from tasks.errors import (
    BadRequest,
    Forbidden,
    GrantConflict,
    NetworkError,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamError,
)
from tasks.models import Grant
from tasks.session import make_session

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

    def script(self, method: str, path: str, *replies: Reply | Exception) -> ScriptedTenant:
        self.routes[(method, path)].extend(replies)
        return self

    def calls(self, method: str, path: str) -> list[requests.PreparedRequest]:
        return [r for r in self.sent if r.method == method and urlsplit(r.url or "").path == path]

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(request)
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


# -- translation of answers (pure) -----------------------------------------------------------

ERROR_BODY = {"statusCode": 0, "error": "X", "message": "it went wrong", "errorCode": "some_code"}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, GrantConflict),
        (429, RateLimited),
        (408, UpstreamError),
        (500, UpstreamError),
        (502, UpstreamError),
        (503, UpstreamError),
        (405, BadRequest),
        (302, UpstreamError),
    ],
)
def test_each_management_status_becomes_its_error(status: int, kind: type) -> None:
    error = management_error(status, {}, json.dumps(ERROR_BODY), now_epoch_s=NOW)
    assert type(error) is kind
    assert error.http_status == status


def test_auth0s_message_and_error_code_are_kept() -> None:
    body = {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Client of type express_configuration cannot be used",
        "errorCode": "validation_error",
    }
    error = management_error(400, {}, json.dumps(body), now_epoch_s=NOW)
    assert error.message == "400 Bad Request: Client of type express_configuration cannot be used"
    assert error.auth0_error_code == "validation_error"


def test_an_error_body_without_error_code_still_gives_a_readable_message() -> None:
    body = {"statusCode": 404, "error": "Not Found", "message": "No resource with identifier x"}
    error = management_error(404, {}, json.dumps(body), now_epoch_s=NOW)
    assert error.message == "404 Not Found: No resource with identifier x"
    assert error.auth0_error_code is None


def test_an_error_body_that_is_not_json_is_quoted_in_short() -> None:
    error = management_error(502, {}, b"<html>Bad\n gateway</html>", now_epoch_s=NOW)
    assert error.message == "502 Bad Gateway: <html>Bad gateway</html>"


def test_a_429_carries_retry_after_and_the_rate_limit_reset() -> None:
    headers = {"Retry-After": "3", "x-ratelimit-reset": str(int(NOW) + 5)}
    error = management_error(429, headers, b"", now_epoch_s=NOW)
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == 3.0
    assert error.reset_at_epoch_s == NOW + 5


def test_a_429_with_an_http_date_retry_after_is_read_in_seconds() -> None:
    headers = {"Retry-After": "Fri, 15 Jan 2027 08:00:10 GMT"}
    error = management_error(429, headers, b"", now_epoch_s=1800000000.0)
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == 10.0


def test_a_5xx_may_have_been_applied_but_a_408_was_not() -> None:
    assert management_error(500, {}, b"", now_epoch_s=NOW).ambiguous
    assert not management_error(408, {}, b"", now_epoch_s=NOW).ambiguous


def test_a_redirect_is_reported_not_followed() -> None:
    error = management_error(301, {"Location": "https://elsewhere.example/"}, b"", now_epoch_s=NOW)
    assert "elsewhere.example" in error.message
    assert not error.ambiguous


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, Unauthorized), (403, Forbidden), (400, Unauthorized), (429, RateLimited)],
)
def test_token_endpoint_refusals_become_their_errors(status: int, kind: type) -> None:
    body = {"error": "access_denied", "error_description": "Unauthorized"}
    error = token_error(status, {}, json.dumps(body), now_epoch_s=NOW)
    assert type(error) is kind
    assert error.message.startswith("token request refused")
    if status != 429:
        assert error.auth0_error_code == "access_denied"


@pytest.mark.parametrize("status", [500, 503, 408])
def test_token_endpoint_outages_are_retryable_and_never_ambiguous(status: int) -> None:
    error = token_error(status, {}, b"", now_epoch_s=NOW)
    assert isinstance(error, UpstreamError)
    assert error.retryable and not error.ambiguous


def test_secrets_echoed_by_a_server_are_redacted_from_messages() -> None:
    body = {"error": "access_denied", "error_description": f"bad secret {SECRET}"}
    error = token_error(401, {}, json.dumps(body), now_epoch_s=NOW, secrets=(SECRET,))
    assert SECRET not in error.message
    assert "[redacted]" in error.message


def test_a_connect_error_certainly_did_not_reach_the_server() -> None:
    reason = MaxRetryError(None, "/", NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    error = network_error(requests.ConnectionError(reason), "create_grant")
    assert isinstance(error, NetworkError) and not error.ambiguous


def test_a_connect_timeout_did_not_reach_the_server() -> None:
    error = network_error(requests.exceptions.ConnectTimeout(), "create_grant")
    assert not error.ambiguous


def test_a_read_timeout_may_have_reached_the_server() -> None:
    error = network_error(requests.exceptions.ReadTimeout(), "create_grant")
    assert error.ambiguous


def test_a_dropped_connection_may_have_reached_the_server() -> None:
    dropped = ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    error = network_error(requests.ConnectionError(dropped), "create_grant")
    assert error.ambiguous


def test_a_failed_token_request_is_never_ambiguous() -> None:
    assert not network_error(requests.exceptions.ReadTimeout(), "token").ambiguous


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
