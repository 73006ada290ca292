"""POST /oauth/token over HTTP: client credentials, form or JSON, and the OAuth errors."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from grant_worker.emulator.testing import RunningEmulator
from tests.emulator.helpers import Api, fetch_token


def token_request(
    emu: RunningEmulator, *, as_json: bool = False, **overrides: Any
) -> requests.Response:
    fields = {
        "grant_type": "client_credentials",
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "audience": emu.management_audience,
        **overrides,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    url = f"{emu.base_url}/oauth/token"
    if as_json:
        return requests.post(url, json=fields, timeout=10)
    return requests.post(url, data=fields, timeout=10)


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_client_credentials_give_a_bearer_token_with_the_granted_scopes(
    emu: RunningEmulator, as_json: bool
) -> None:
    response = token_request(emu, as_json=as_json)
    assert response.status_code == 200
    body = response.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 86400)
    assert set(body["scope"].split()) == {
        "create:client_grants",
        "read:client_grants",
        "update:client_grants",
        "delete:client_grants",
        "read:resource_servers",
        "read:clients",
    }


def test_the_http_form_of_the_management_audience_is_accepted(emu: RunningEmulator) -> None:
    http_audience = f"{emu.base_url}/api/v2/"
    assert token_request(emu, audience=http_audience).status_code == 200


def test_a_wrong_secret_is_401_access_denied(emu: RunningEmulator) -> None:
    response = token_request(emu, client_secret="wrong")
    assert response.status_code == 401
    assert response.json() == {"error": "access_denied", "error_description": "Unauthorized"}


def test_an_unknown_client_is_401_access_denied(emu: RunningEmulator) -> None:
    assert token_request(emu, client_id="nobody").status_code == 401


def test_a_grant_type_the_client_may_not_use_is_unauthorized_client(emu: RunningEmulator) -> None:
    response = token_request(emu, grant_type="password")
    assert response.status_code == 403
    assert response.json() == {
        "error": "unauthorized_client",
        "error_description": "Grant type 'password' not allowed for the client.",
        "error_uri": "https://auth0.com/docs/clients/client-grant-types",
    }


def test_an_unknown_grant_type_is_unsupported(emu: RunningEmulator) -> None:
    response = token_request(emu, grant_type="magic")
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")


def test_a_missing_grant_type_is_an_invalid_request(emu: RunningEmulator) -> None:
    response = token_request(emu, grant_type=None)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_an_unknown_audience_is_access_denied(emu: RunningEmulator) -> None:
    response = token_request(emu, audience="https://nowhere.example.com/")
    assert response.status_code == 403
    assert response.json()["error_description"] == "Service not found: https://nowhere.example.com/"


def test_another_api_needs_a_client_grant_first(emu: RunningEmulator, api: Api) -> None:
    refused = token_request(emu, audience="https://billing.example.com/")
    assert refused.status_code == 403
    assert 'You need to create a "client-grant"' in refused.json()["error_description"]
    api.create(
        {
            "client_id": emu.client_id,
            "audience": "https://billing.example.com/",
            "scope": ["read:invoices"],
        }
    )
    granted = token_request(emu, audience="https://billing.example.com/")
    assert granted.json()["scope"] == "read:invoices"


def test_a_token_for_another_api_cannot_call_the_management_api(
    emu: RunningEmulator, api: Api
) -> None:
    api.create({"client_id": emu.client_id, "audience": "https://billing.example.com/"})
    other = token_request(emu, audience="https://billing.example.com/").json()["access_token"]
    assert Api(emu, other).list().status_code == 401


def test_a_requested_scope_narrows_the_token(emu: RunningEmulator) -> None:
    response = token_request(emu, scope="read:client_grants")
    assert response.json()["scope"] == "read:client_grants"


def test_the_token_lifetime_can_be_changed_at_run_time(emu: RunningEmulator) -> None:
    emu.admin.set_token_lifetime(120)
    assert token_request(emu).json()["expires_in"] == 120


def test_a_token_issued_with_no_lifetime_is_refused_as_expired(emu: RunningEmulator) -> None:
    emu.admin.set_token_lifetime(0)
    response = Api(emu, fetch_token(emu)).list()
    assert response.status_code == 401
    assert response.json()["message"] == "Expired token received for JSON Web Token validation"


def test_issued_tokens_are_counted(emu: RunningEmulator) -> None:
    token_request(emu)
    token_request(emu, client_secret="wrong")
    assert emu.admin.stats()["tokens_issued"] == 1
