"""The official Python SDK (auth0-python 6.x) against the emulator, unchanged.

`ManagementClient` always builds `https://{domain}`, so the test uses the generated client it
wraps, `auth0.management.client.Auth0`, whose documented `base_url` takes the emulator's http
URL; the token comes from the SDK's own `GetToken` with `protocol="http"`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from auth0.authentication import GetToken
from auth0.management.client import Auth0
from auth0.management.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    TooManyRequestsError,
)

from grant_worker.emulator.testing import RunningEmulator

API = "https://api.example.com/"


@pytest.fixture
def sdk(emu: RunningEmulator) -> Iterator[Auth0]:
    domain = emu.base_url.removeprefix("http://")
    token = GetToken(domain, emu.client_id, emu.client_secret, protocol="http").client_credentials(
        audience=emu.management_audience
    )["access_token"]
    # No retries: the SDK retries 409 and 429 itself, which would only slow the test down.
    yield Auth0(base_url=f"{emu.base_url}/api/v2", token=token, max_retries=0)


def test_the_sdk_creates_a_grant_and_reads_its_typed_fields(sdk: Auth0) -> None:
    created = sdk.client_grants.create(
        client_id="svc-00001", audience=API, scope=["read:data"], subject_type="user"
    )
    assert created.id is not None and created.id.startswith("cgr_")
    assert (created.client_id, created.scope, created.subject_type) == (
        "svc-00001",
        ["read:data"],
        "user",
    )


def test_the_sdk_lists_every_grant_through_checkpoint_pages(
    emu: RunningEmulator, sdk: Auth0
) -> None:
    ids = [sdk.client_grants.create(client_id=f"svc-{n:05d}", audience=API).id for n in range(5)]
    listed = [grant.id for grant in sdk.client_grants.list(take=2)]
    # the tenant's two Management API grants (grant-worker, grant-reader) come first
    assert listed[2:] == ids
    assert emu.admin.stats()["requests_by_route"]["GET /api/v2/client-grants"] == 4


def test_the_sdk_gets_updates_and_deletes_a_grant(sdk: Auth0) -> None:
    created = sdk.client_grants.create(client_id="svc-00002", audience=API, scope=["a"])
    assert created.id is not None
    assert sdk.client_grants.get(created.id).scope == ["a"]
    updated = sdk.client_grants.update(created.id, scope=["a", "b"], organization_usage="allow")
    assert (updated.scope, updated.organization_usage) == (["a", "b"], "allow")
    sdk.client_grants.delete(created.id)
    with pytest.raises(NotFoundError) as caught:
        sdk.client_grants.get(created.id)
    assert caught.value.body["errorCode"] == "inexistent_client_grant"


def test_the_sdk_raises_bad_request_for_an_express_configuration_client(sdk: Auth0) -> None:
    with pytest.raises(BadRequestError) as caught:
        sdk.client_grants.create(client_id="app-express", audience=API)
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == "Client of type express_configuration cannot be used"


def test_the_sdk_raises_not_found_for_an_unknown_audience(sdk: Auth0) -> None:
    with pytest.raises(NotFoundError):
        sdk.client_grants.create(client_id="svc-00001", audience="https://nope.example.com/")


def test_the_sdk_raises_conflict_for_a_duplicate(sdk: Auth0) -> None:
    sdk.client_grants.create(client_id="svc-00003", audience=API)
    with pytest.raises(ConflictError) as caught:
        sdk.client_grants.create(client_id="svc-00003", audience=API)
    assert (
        caught.value.body["message"] == f"A client grant already exists between svc-00003 and {API}"
    )


def test_the_sdk_raises_too_many_requests_with_the_rate_limit_headers(
    emu: RunningEmulator, sdk: Auth0
) -> None:
    emu.admin.set_rate_limit(0.001, 1)
    sdk.client_grants.create(client_id="svc-00004", audience=API)
    with pytest.raises(TooManyRequestsError) as caught:
        sdk.client_grants.create(client_id="svc-00005", audience=API)
    assert caught.value.body["errorCode"] == "too_many_requests"
    assert caught.value.headers["x-ratelimit-remaining"] == "0"


def test_the_sdk_retries_a_409_itself_when_allowed_to(emu: RunningEmulator, sdk: Auth0) -> None:
    sdk.client_grants.create(client_id="svc-00006", audience=API)
    # The SDK waits until x-ratelimit-reset, at most 1 s away here, so one retry stays quick.
    emu.admin.set_rate_limit(1000, 1000)
    with pytest.raises(ConflictError):
        sdk.client_grants.create(
            client_id="svc-00006", audience=API, request_options={"max_retries": 1}
        )
    assert emu.admin.stats()["posts_by_grant_key"][f"svc-00006|{API}|client"] == 3
