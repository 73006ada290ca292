"""GET /resource-servers and /clients over HTTP, as Auth0 answers them: the read scopes, the
real 404 bodies, offset pages, lookup of a resource server by its identifier."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from grant_worker.emulator.testing import RunningEmulator
from tests.emulator.helpers import fetch_token

API = "https://api.example.com/"


def get(emu: RunningEmulator, token: str, path: str, **params: object) -> requests.Response:
    return requests.get(
        f"{emu.base_url}/api/v2/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_a_resource_server_is_read_by_its_identifier(
    emu: RunningEmulator, worker_token: str
) -> None:
    response = get(emu, worker_token, f"resource-servers/{quote(API, safe='')}")
    assert response.status_code == 200
    body = response.json()
    assert body["identifier"] == API
    assert {"value": "read:data", "description": "read:data"} in body["scopes"]
    by_id = get(emu, worker_token, f"resource-servers/{body['id']}")
    assert by_id.json() == body


def test_the_management_api_is_a_system_resource_server(
    emu: RunningEmulator, worker_token: str
) -> None:
    response = get(emu, worker_token, f"resource-servers/{quote(emu.management_audience, safe='')}")
    assert response.status_code == 200
    assert response.json()["is_system"] is True


def test_an_unknown_resource_server_is_auth0s_404(emu: RunningEmulator, worker_token: str) -> None:
    response = get(emu, worker_token, f"resource-servers/{quote('https://nope/', safe='')}")
    assert response.status_code == 404
    assert response.json() == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "The resource server does not exist",
        "errorCode": "inexistent_resource_server",
    }


def test_resource_servers_list_in_offset_pages_with_totals(
    emu: RunningEmulator, worker_token: str
) -> None:
    bare = get(emu, worker_token, "resource-servers").json()
    assert isinstance(bare, list) and API in {s["identifier"] for s in bare}
    page = get(emu, worker_token, "resource-servers", per_page=2, page=1, include_totals="true")
    body = page.json()
    assert (body["total"], body["start"], body["limit"]) == (len(bare), 2, 2)
    assert [s["identifier"] for s in body["resource_servers"]] == [
        s["identifier"] for s in bare[2:4]
    ]
    only = get(emu, worker_token, "resource-servers", identifiers=API).json()
    assert [s["identifier"] for s in only] == [API]


def test_a_client_is_read_with_the_fields_asked_for(
    emu: RunningEmulator, worker_token: str
) -> None:
    response = get(
        emu, worker_token, "clients/app-express", fields="client_id,app_type", include_fields="true"
    )
    assert response.status_code == 200
    assert response.json() == {"client_id": "app-express", "app_type": "express_configuration"}
    partner = get(emu, worker_token, "clients/app-partner-portal").json()
    assert partner["is_first_party"] is False
    assert "client_secret" not in get(emu, worker_token, f"clients/{emu.client_id}").json()


def test_an_unknown_client_is_auth0s_404(emu: RunningEmulator, worker_token: str) -> None:
    response = get(emu, worker_token, "clients/nobody")
    assert response.status_code == 404
    assert response.json() == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "The client does not exist",
        "errorCode": "inexistent_client",
    }


def test_clients_list_in_offset_pages_and_filters(emu: RunningEmulator, worker_token: str) -> None:
    body = get(emu, worker_token, "clients", per_page=100, page=3, include_totals="true").json()
    assert body["start"] == 300 and body["limit"] == 100 and len(body["clients"]) == 100
    assert body["total"] >= 5000
    express = get(emu, worker_token, "clients", app_type="express_configuration").json()
    assert [c["client_id"] for c in express] == ["app-express"]
    third = get(emu, worker_token, "clients", is_first_party="false").json()
    assert [c["client_id"] for c in third] == ["app-partner-portal"]
    assert get(emu, worker_token, "clients", per_page=101).status_code == 400


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("resource-servers", "read:resource_servers"),
        (f"resource-servers/{quote(API, safe='')}", "read:resource_servers"),
        ("clients", "read:clients,read:client_keys"),
        ("clients/app-express", "read:clients,read:client_keys"),
    ],
)
def test_a_token_without_the_read_scope_is_403_insufficient_scope(
    emu: RunningEmulator, path: str, expected: str
) -> None:
    # grant-reader's seeded Management API grant holds read:client_grants only.
    token = fetch_token(emu, "grant-reader", "reader-secret")
    response = get(emu, token, path)
    assert response.status_code == 403
    assert response.json() == {
        "statusCode": 403,
        "error": "Forbidden",
        "message": f"Insufficient scope, expected any of: {expected}",
        "errorCode": "insufficient_scope",
    }
