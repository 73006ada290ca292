"""Bearer tokens on every Management API call, over HTTP."""

from __future__ import annotations

import pytest
import requests

from grant_worker.emulator.testing import RunningEmulator, running_emulator
from tests.emulator.helpers import Api, fetch_token

GRANTS = "/api/v2/client-grants"
CALLS = [
    ("GET", GRANTS, "read:client_grants"),
    ("POST", GRANTS, "create:client_grants"),
    ("GET", GRANTS + "/cgr_0000000000000000", "read:client_grants"),
    ("PATCH", GRANTS + "/cgr_0000000000000000", "update:client_grants"),
    ("DELETE", GRANTS + "/cgr_0000000000000000", "delete:client_grants"),
]


@pytest.mark.parametrize(("method", "path", "_scope"), CALLS)
def test_a_call_without_a_token_is_401(
    emu: RunningEmulator, method: str, path: str, _scope: str
) -> None:
    response = requests.request(method, emu.base_url + path, json={"scope": []}, timeout=10)
    assert response.status_code == 401
    assert response.json() == {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": "Missing authentication",
    }


def test_an_unknown_token_is_401(emu: RunningEmulator) -> None:
    headers = {"Authorization": "Bearer abc.def.ghi"}
    response = requests.get(emu.base_url + GRANTS, headers=headers, timeout=10)
    assert response.status_code == 401


def test_a_token_from_another_emulator_is_401(emu: RunningEmulator) -> None:
    with running_emulator() as other:
        foreign = fetch_token(other)
    assert Api(emu, foreign).list().status_code == 401


ALL_SCOPES = {scope for _, _, scope in CALLS}


def token_without(emu: RunningEmulator, scope: str) -> str:
    """A token holding every client_grants scope but `scope` (narrowed at /oauth/token)."""
    response = requests.post(
        f"{emu.base_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": emu.client_secret,
            "audience": emu.management_audience,
            "scope": " ".join(sorted(ALL_SCOPES - {scope})),
        },
        timeout=10,
    )
    token: str = response.json()["access_token"]
    return token


@pytest.mark.parametrize(("method", "path", "scope"), CALLS)
def test_a_token_without_the_needed_scope_is_403_insufficient_scope(
    emu: RunningEmulator, method: str, path: str, scope: str
) -> None:
    response = requests.request(
        method,
        emu.base_url + path,
        json={"scope": []},
        headers={"Authorization": f"Bearer {token_without(emu, scope)}"},
        timeout=10,
    )
    assert response.status_code == 403
    assert response.json() == {
        "statusCode": 403,
        "error": "Forbidden",
        "message": f"Insufficient scope, expected any of: {scope}",
        "errorCode": "insufficient_scope",
    }


def test_the_read_only_demo_client_can_list_but_not_create(emu: RunningEmulator) -> None:
    reader = Api(emu, fetch_token(emu, "grant-reader", "reader-secret"))
    assert reader.list().status_code == 200
    assert (
        reader.create(
            {"client_id": "svc-00000", "audience": "https://api.example.com/"}
        ).status_code
        == 403
    )


def test_authentication_is_checked_before_the_body(emu: RunningEmulator) -> None:
    response = requests.post(emu.base_url + GRANTS, data=b"{not json", timeout=10)
    assert response.status_code == 401
