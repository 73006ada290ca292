"""Translation of answers and `requests` exceptions into the error tree (pure, no network)."""

from __future__ import annotations

import json

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from grant_worker.tasks.auth0.translate import management_error, network_error, token_error
from grant_worker.tasks.errors import (
    BadRequest,
    Forbidden,
    GrantConflict,
    InsufficientScope,
    NetworkError,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamError,
)

SECRET = "client-secret-never-shown"
NOW = 1_800_000_000.0

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


def test_a_403_insufficient_scope_is_told_apart_from_other_403s() -> None:
    body = {
        "statusCode": 403,
        "error": "Forbidden",
        "message": "Insufficient scope, expected any of: read:resource_servers",
        "errorCode": "insufficient_scope",
    }
    error = management_error(403, {}, json.dumps(body), now_epoch_s=NOW)
    assert isinstance(error, InsufficientScope) and isinstance(error, Forbidden)
    assert error.code == "forbidden"


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


def test_a_failed_call_that_changes_nothing_is_never_ambiguous() -> None:
    error = network_error(requests.exceptions.ReadTimeout(), "token", may_apply=False)
    assert not error.ambiguous
