"""The Management API client over HTTP against the project's emulator: tokens, errors, paging."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from grant_worker.config.settings import Settings
from grant_worker.emulator.testing import RunningEmulator
from grant_worker.tasks.auth0.api import ManagementApi, make_api
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.errors import Auth0Error, BadRequest, Forbidden, NotFound, Unauthorized

API = "https://api.example.com/"
BILLING = "https://billing.example.com/"
# Clients of these tests: svc-00000 … svc-00999 (the pipeline tests use svc-01000 and up).
_numbers = itertools.count(0)


def client_id() -> str:
    return f"svc-{next(_numbers):05d}"


def api_for(settings: Settings, **kwargs: Any) -> ManagementApi:
    return make_api(settings, make_session(settings), **kwargs)


def assert_no_secret(error: Auth0Error, *secrets: str) -> None:
    shown = [str(error), repr(error), error.to_error_info().model_dump_json()]
    for secret in secrets:
        assert all(secret not in text for text in shown)


def test_a_created_grant_comes_back_as_auth0_echoes_it(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    owner = client_id()
    grant = api_for(settings_factory()).create_grant(
        {"client_id": owner, "audience": API, "scope": ["read:data"]}
    )
    assert grant.id.startswith("cgr_")
    assert (grant.client_id, grant.audience, grant.scope) == (owner, API, ["read:data"])
    assert grant.subject_type == "client"


def test_a_body_auth0_refuses_is_a_bad_request_with_its_error_code(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    with pytest.raises(BadRequest) as caught:
        api_for(settings_factory()).create_grant(
            {"client_id": client_id(), "audience": API, "colour": "blue"}
        )
    assert caught.value.auth0_error_code == "invalid_body"
    assert "colour" in caught.value.message


def test_an_unknown_grant_id_is_not_found(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    with pytest.raises(NotFound) as caught:
        api_for(settings_factory()).get_grant("cgr_doesnotexist0000")
    assert caught.value.auth0_error_code == "inexistent_client_grant"


def test_one_token_serves_many_calls(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    api = api_for(settings_factory())
    for _ in range(6):
        api.create_grant({"client_id": client_id(), "audience": API})
    assert emulator.admin.stats()["tokens_issued"] == 1


def test_a_token_is_renewed_before_it_expires_without_any_401(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    emulator.admin.set_token_lifetime(3)
    api = api_for(settings_factory())
    api.create_grant({"client_id": client_id(), "audience": API})
    time.sleep(1.6)  # past half the lifetime: the cache renews before the tenant refuses
    api.create_grant({"client_id": client_id(), "audience": API})
    stats = emulator.admin.stats()
    assert stats["tokens_issued"] == 2
    assert "401" not in stats["requests_by_status"]


def test_an_expired_token_refused_with_401_is_renewed_and_the_call_repeated(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    # The tenant's tokens live 1-2 s (it rounds `exp` down to whole seconds).
    emulator.admin.set_token_lifetime(2)
    # A clock that never moves: the cache believes its token is fresh; only the 401 tells.
    api = api_for(settings_factory(), token_leeway_s=0, clock=lambda: 0.0)
    api.create_grant({"client_id": client_id(), "audience": API})
    time.sleep(2.05)
    grant = api.create_grant({"client_id": client_id(), "audience": API})
    assert grant.id.startswith("cgr_")
    stats = emulator.admin.stats()
    assert stats["requests_by_status"]["401"] >= 1
    assert stats["tokens_issued"] == 1 + stats["requests_by_status"]["401"]


def test_refused_client_credentials_are_final_and_never_show_the_secret(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    wrong = "wrong-secret-value-123"
    with pytest.raises(Unauthorized) as caught:
        api_for(settings_factory(auth0_client_secret=wrong)).get_grant("cgr_x")
    assert caught.value.auth0_error_code == "access_denied"
    assert_no_secret(caught.value, wrong, emulator.client_secret)


def test_a_static_token_the_tenant_refuses_is_final_unauthorized(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    static = "not-a-real-token-abc"
    with pytest.raises(Unauthorized) as caught:
        api_for(settings_factory(auth0_token=static)).get_grant("cgr_x")
    assert emulator.admin.stats()["requests_total"] == 1
    assert_no_secret(caught.value, static)


def test_a_token_without_the_needed_scope_is_forbidden(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    reader = settings_factory(auth0_client_id="grant-reader", auth0_client_secret="reader-secret")
    with pytest.raises(Forbidden) as caught:
        api_for(reader).create_grant({"client_id": client_id(), "audience": API})
    assert caught.value.auth0_error_code == "insufficient_scope"
    assert_no_secret(caught.value, "reader-secret")


def test_find_grants_follows_checkpoint_pages_past_one_hundred(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    api = api_for(settings_factory())
    owners = [client_id() for _ in range(130)]
    for owner in owners:
        api.create_grant({"client_id": owner, "audience": BILLING})
    api.create_grant({"client_id": owners[0], "audience": API})  # another audience
    found = api.find_grants(audience=BILLING)
    assert sorted(g.client_id or "" for g in found) == sorted(owners)
    assert emulator.admin.stats()["requests_by_route"]["GET /api/v2/client-grants"] == 2


def test_find_grants_narrows_by_client_and_subject_type(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    api = api_for(settings_factory())
    owner = client_id()
    api.create_grant({"client_id": owner, "audience": API, "subject_type": "client"})
    api.create_grant({"client_id": owner, "audience": API, "subject_type": "user"})
    api.create_grant({"client_id": client_id(), "audience": API})
    found = api.find_grants(audience=API, client_id=owner, subject_type="user")
    assert [(g.client_id, g.subject_type) for g in found] == [(owner, "user")]


def test_update_changes_the_patchable_fields(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    api = api_for(settings_factory())
    grant = api.create_grant({"client_id": client_id(), "audience": API, "scope": ["read:data"]})
    updated = api.update_grant(grant.id, {"scope": ["read:data", "write:data"]})
    assert updated.scope == ["read:data", "write:data"]
    assert api.get_grant(grant.id).scope == ["read:data", "write:data"]


def test_every_answer_the_client_gets_reaches_the_session_response_hooks(
    emulator: RunningEmulator, settings_factory: Callable[..., Settings]
) -> None:
    # The worker's activity counter is such a hook (`ActivityCounter.count_calls_of`).
    settings = settings_factory()
    session = make_session(settings)
    seen: list[tuple[str, int]] = []
    session.hooks["response"].append(
        lambda response, **_: seen.append((response.request.path_url, response.status_code))
    )
    make_api(settings, session).create_grant({"client_id": client_id(), "audience": API})
    assert seen == [("/oauth/token", 200), ("/api/v2/client-grants", 201)]
