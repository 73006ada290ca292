"""The tenant rules of the client-grants endpoints, without HTTP (emulator.grants)."""

from __future__ import annotations

from typing import Any

import pytest

from grant_worker.emulator.dialect import Dialect
from grant_worker.emulator.errors import ApiError
from grant_worker.emulator.grants import ClientGrants
from grant_worker.emulator.seed import Seed, default_seed, seed_from_dict
from grant_worker.emulator.store import GrantStore
from grant_worker.emulator.tenant import Tenant

HOST = "127.0.0.1:8787"
MGMT = f"https://{HOST}/api/v2/"
API = "https://api.example.com/"

SEED: dict[str, Any] = {
    "resource_servers": [{"identifier": API, "scopes": ["read:data"]}],
    "clients": [
        {"client_id": "m2m"},
        {"client_id": "express", "app_type": "express_configuration"},
        {"client_id": "partner", "app_type": "regular_web", "is_first_party": False},
    ],
}


def service(seed: Seed | None = None, dialect: Dialect | None = None) -> ClientGrants:
    seed = seed or seed_from_dict(SEED)
    return ClientGrants(Tenant(seed), GrantStore(), dialect or seed.dialect)


def refused(body: dict[str, Any], svc: ClientGrants | None = None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        (svc or service()).create(body, host=HOST)
    return caught.value


def test_a_grant_echoes_only_what_was_sent_plus_id_and_subject_type() -> None:
    body = service().create(
        {"client_id": "m2m", "audience": API, "scope": ["read:data"]}, host=HOST
    )
    assert body == {
        "id": body["id"],
        "client_id": "m2m",
        "audience": API,
        "scope": ["read:data"],
        "subject_type": "client",
    }


def test_scopes_are_not_checked_against_the_apis_declared_scopes() -> None:
    body = service().create({"client_id": "m2m", "audience": API, "scope": ["anything"]}, host=HOST)
    assert body["scope"] == ["anything"]


def test_neither_client_id_nor_default_for_is_refused() -> None:
    error = refused({"audience": API})
    assert (error.status, error.error_code) == (400, "invalid_body")


def test_both_client_id_and_default_for_are_refused() -> None:
    error = refused({"audience": API, "client_id": "m2m", "default_for": "third_party_clients"})
    assert error.status == 400


def test_a_non_empty_scope_with_allow_all_scopes_is_refused() -> None:
    error = refused({"audience": API, "client_id": "m2m", "scope": ["a"], "allow_all_scopes": True})
    assert (error.status, error.error_code) == (400, "invalid_body")


def test_an_empty_scope_with_allow_all_scopes_is_accepted_and_not_echoed() -> None:
    body = service().create(
        {"audience": API, "client_id": "m2m", "scope": [], "allow_all_scopes": True}, host=HOST
    )
    assert "scope" not in body and body["allow_all_scopes"] is True


def test_the_scope_and_allow_all_scopes_rule_can_be_switched_off() -> None:
    svc = service(dialect=Dialect(reject_scope_with_allow_all_scopes=False))
    body = svc.create(
        {"audience": API, "client_id": "m2m", "scope": ["a"], "allow_all_scopes": True}, host=HOST
    )
    assert body["allow_all_scopes"] is True


def test_an_unknown_audience_is_a_404_naming_it() -> None:
    error = refused({"audience": "https://nope/", "client_id": "m2m"})
    assert (error.status, error.message) == (404, "No resource with identifier https://nope/")


def test_an_unknown_client_is_a_404() -> None:
    error = refused({"audience": API, "client_id": "ghost"})
    assert (error.status, error.error_code) == (404, "inexistent_client")


def test_an_express_configuration_client_cannot_hold_grants() -> None:
    error = refused({"audience": API, "client_id": "express"})
    assert error.body() == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Client of type express_configuration cannot be used",
        "errorCode": "validation_error",
    }


def test_the_management_api_is_a_resource_server_under_both_schemes() -> None:
    svc = service()
    svc.create({"audience": MGMT, "client_id": "m2m"}, host=HOST)
    svc.create({"audience": f"http://{HOST}/api/v2/", "client_id": "m2m"}, host=HOST)
    assert len(svc.store) == 2


def test_a_seeded_extra_identifier_is_the_management_api_too() -> None:
    seed = seed_from_dict(
        {**SEED, "management_api": {"extra_identifiers": ["https://t.eu.auth0.com/api/v2/"]}}
    )
    error = refused(
        {"audience": "https://t.eu.auth0.com/api/v2/", "client_id": "partner"}, service(seed)
    )
    assert error.message.startswith("Client grants for this API cannot be created for third-party")


def test_a_third_party_client_cannot_hold_a_management_api_grant() -> None:
    error = refused({"audience": MGMT, "client_id": "partner"})
    assert error.status == 400


def test_a_third_party_client_may_hold_a_grant_on_another_api() -> None:
    assert service().create({"audience": API, "client_id": "partner"}, host=HOST)


def test_a_default_grant_has_no_client_id_and_defaults_subject_type_to_client() -> None:
    body = service().create(
        {"audience": API, "default_for": "third_party_clients", "scope": ["read:data"]}, host=HOST
    )
    assert body == {
        "id": body["id"],
        "audience": API,
        "scope": ["read:data"],
        "subject_type": "client",
        "default_for": "third_party_clients",
    }


def test_a_default_grant_on_the_management_api_is_refused() -> None:
    assert refused({"audience": MGMT, "default_for": "third_party_clients"}).status == 400


def test_a_user_grant_on_the_management_api_holds_only_current_user_scopes() -> None:
    svc = service()
    svc.create(
        {
            "audience": MGMT,
            "client_id": "m2m",
            "subject_type": "user",
            "scope": ["read:current_user"],
        },
        host=HOST,
    )
    error = refused(
        {"audience": MGMT, "client_id": "m2m", "subject_type": "user", "scope": ["read:users"]}, svc
    )
    assert error.status == 400 and "read:users" in error.message


def test_a_duplicate_grant_is_a_409_with_auth0s_message() -> None:
    svc = service()
    svc.create({"audience": API, "client_id": "m2m"}, host=HOST)
    error = refused({"audience": API, "client_id": "m2m", "scope": ["other"]}, svc)
    assert error.body() == {
        "statusCode": 409,
        "error": "Conflict",
        "message": f"A client grant already exists between m2m and {API}",
        "errorCode": "conflict",
    }


def test_the_409_error_code_comes_from_the_dialect() -> None:
    svc = service(dialect=Dialect(conflict_error_code="client_grant_conflict"))
    svc.create({"audience": API, "client_id": "m2m"}, host=HOST)
    assert refused({"audience": API, "client_id": "m2m"}, svc).error_code == "client_grant_conflict"


def test_a_duplicate_default_grant_is_a_409() -> None:
    svc = service()
    svc.create({"audience": API, "default_for": "third_party_clients"}, host=HOST)
    assert refused({"audience": API, "default_for": "third_party_clients"}, svc).status == 409


def test_getting_an_unknown_grant_is_auth0s_404() -> None:
    with pytest.raises(ApiError) as caught:
        service().get("cgr_RbTA5m85G24ODe5i")
    assert caught.value.body() == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "The grant does not exist.",
        "errorCode": "inexistent_client_grant",
    }


def test_updating_an_unknown_grant_is_a_404_after_the_body_is_checked() -> None:
    svc = service()
    with pytest.raises(ApiError) as bad_body:
        svc.update("cgr_x", {}, host=HOST)
    with pytest.raises(ApiError) as unknown:
        svc.update("cgr_x", {"scope": []}, host=HOST)
    assert (bad_body.value.status, unknown.value.status) == (400, 404)
    assert unknown.value.error_code == "inexistent_client_grant"


def test_an_update_sending_scope_while_allow_all_scopes_stays_on_is_refused() -> None:
    svc = service()
    grant = svc.create({"audience": API, "client_id": "m2m", "allow_all_scopes": True}, host=HOST)
    with pytest.raises(ApiError):
        svc.update(grant["id"], {"scope": ["a"]}, host=HOST)


def test_an_update_turning_allow_all_scopes_off_may_set_scope() -> None:
    svc = service()
    grant = svc.create({"audience": API, "client_id": "m2m", "allow_all_scopes": True}, host=HOST)
    updated = svc.update(grant["id"], {"allow_all_scopes": False, "scope": []}, host=HOST)
    assert (updated["scope"], updated["allow_all_scopes"]) == ([], False)


def test_deleting_twice_is_not_an_error() -> None:
    svc = service()
    grant = svc.create({"audience": API, "client_id": "m2m"}, host=HOST)
    svc.delete(grant["id"])
    svc.delete(grant["id"])
    assert len(svc.store) == 0


def test_a_system_grant_cannot_be_changed_or_deleted() -> None:
    svc = service()
    grant = svc.create({"audience": API, "client_id": "m2m"}, host=HOST, is_system=True)
    assert grant["is_system"] is True
    with pytest.raises(ApiError):
        svc.update(grant["id"], {"scope": []}, host=HOST)
    with pytest.raises(ApiError):
        svc.delete(grant["id"])
    assert len(svc.store) == 1


def test_every_generated_service_client_of_the_default_seed_can_hold_its_own_grant() -> None:
    svc = service(default_seed())
    for n in range(5000):
        svc.create({"client_id": f"svc-{n:05d}", "audience": API}, host=HOST)
    assert len(svc.store) == 5000


def test_scopes_the_api_does_not_declare_are_refused_when_the_dialect_says_so() -> None:
    svc = service(dialect=Dialect(validate_scopes_against_api=True))
    svc.create({"client_id": "m2m", "audience": API, "scope": ["read:data"]}, host=HOST)
    error = refused({"client_id": "partner", "audience": API, "scope": ["write:data"]}, svc)
    assert (error.status, error.error_code) == (400, "invalid_body")
    assert "write:data" in error.message
