"""The client-grants endpoints over HTTP, against the default tenant."""

from __future__ import annotations

import re

from grant_worker.emulator.testing import RunningEmulator
from tests.emulator.helpers import Api

API = "https://api.example.com/"
BILLING = "https://billing.example.com/"
# The seed's grant-worker and grant-reader hold Management API grants, listed first.
MANAGEMENT_GRANTS = 2


def create_many(api: Api, count: int, audience: str = API) -> list[str]:
    ids = []
    for n in range(count):
        response = api.create({"client_id": f"svc-{n:05d}", "audience": audience})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def test_a_created_grant_is_201_with_only_the_fields_sent(api: Api) -> None:
    response = api.create(
        {"client_id": "app-acme-billing", "audience": BILLING, "scope": ["read:invoices"]}
    )
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert re.fullmatch(r"cgr_[A-Za-z0-9]{16}", body["id"])
    assert body == {
        "id": body["id"],
        "client_id": "app-acme-billing",
        "audience": BILLING,
        "scope": ["read:invoices"],
        "subject_type": "client",
    }


def test_the_reply_keys_come_in_auth0s_order_on_the_wire(api: Api) -> None:
    response = api.create(
        {
            "allow_all_scopes": False,
            "authorization_details_types": ["payment"],
            "subject_type": "user",
            "allow_any_organization": True,
            "organization_usage": "allow",
            "scope": ["read:data"],
            "audience": API,
            "client_id": "app-globex-reports",
        }
    )
    keys = re.findall(r'"(\w+)":', response.text.replace('"payment"', ""))
    assert keys == [
        "id",
        "client_id",
        "audience",
        "scope",
        "organization_usage",
        "allow_any_organization",
        "subject_type",
        "authorization_details_types",
        "allow_all_scopes",
    ]


def test_a_form_encoded_create_is_accepted(api: Api) -> None:
    response = api.session.post(
        api.base,
        data={"client_id": "svc-00001", "audience": API, "scope": ["read:data", "write:data"]},
        timeout=10,
    )
    assert response.status_code == 201
    assert response.json()["scope"] == ["read:data", "write:data"]


def test_a_schema_violation_is_400_invalid_body(api: Api) -> None:
    response = api.create({"client_id": "svc-00001", "audience": API, "colour": "red"})
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "error": "Bad Request",
        "message": "Payload validation error: 'Additional properties not allowed: colour'.",
        "errorCode": "invalid_body",
    }


def test_malformed_json_is_400(api: Api) -> None:
    response = api.session.post(
        api.base, data=b"{oops", headers={"Content-Type": "application/json"}, timeout=10
    )
    assert (response.status_code, response.json()["message"]) == (
        400,
        "Invalid request payload JSON format",
    )


def test_an_unsupported_content_type_is_415(api: Api) -> None:
    response = api.session.post(
        api.base, data=b"<xml/>", headers={"Content-Type": "text/xml"}, timeout=10
    )
    assert response.status_code == 415


def test_an_unknown_audience_is_404(api: Api) -> None:
    response = api.create({"client_id": "svc-00001", "audience": "https://nope.example.com/"})
    assert response.status_code == 404
    assert response.json()["message"] == "No resource with identifier https://nope.example.com/"


def test_an_unknown_client_is_404(api: Api) -> None:
    assert api.create({"client_id": "svc-99999", "audience": API}).status_code == 404


def test_the_express_configuration_client_is_400(api: Api) -> None:
    response = api.create({"client_id": "app-express", "audience": API})
    assert (response.status_code, response.json()["errorCode"]) == (400, "validation_error")


def test_the_third_party_client_cannot_get_management_api_scopes(
    emu: RunningEmulator, api: Api
) -> None:
    response = api.create(
        {
            "client_id": "app-partner-portal",
            "audience": emu.management_audience,
            "scope": ["read:client_grants"],
        }
    )
    assert response.status_code == 400


def test_the_same_grant_twice_is_409(api: Api) -> None:
    api.create({"client_id": "svc-00002", "audience": API})
    response = api.create({"client_id": "svc-00002", "audience": API})
    assert response.status_code == 409
    assert (
        response.json()["message"] == f"A client grant already exists between svc-00002 and {API}"
    )


def test_listing_without_parameters_is_a_bare_array(api: Api) -> None:
    create_many(api, 3)
    body = api.list().json()
    # the Management API grants of the seed's grant-worker and grant-reader come first
    assert isinstance(body, list) and len(body) == 3 + MANAGEMENT_GRANTS


def test_include_totals_wraps_the_page_with_total_start_limit(api: Api) -> None:
    create_many(api, 5)
    body = api.list(include_totals="true", page=2, per_page=2).json()
    assert (body["total"], body["start"], body["limit"]) == (5 + MANAGEMENT_GRANTS, 4, 2)
    assert [g["client_id"] for g in body["client_grants"]] == ["svc-00002", "svc-00003"]


def test_checkpoint_paging_follows_next_until_it_is_absent(api: Api) -> None:
    created = create_many(api, 5)
    seen: list[str] = []
    page = api.list(take=2).json()
    while True:
        seen += [g["id"] for g in page["client_grants"]]
        if "next" not in page:
            break
        page = api.list(take=2, **{"from": page["next"]}).json()
    assert seen[MANAGEMENT_GRANTS:] == created


def test_take_wins_over_include_totals(api: Api) -> None:
    create_many(api, 1)
    body = api.list(include_totals="true", per_page=50, take=100).json()
    assert list(body) == ["client_grants"]


def test_the_list_filters_by_client_and_audience(api: Api) -> None:
    create_many(api, 2, API)
    create_many(api, 2, BILLING)
    body = api.list(client_id="svc-00001", audience=BILLING).json()
    assert [(g["client_id"], g["audience"]) for g in body] == [("svc-00001", BILLING)]


def test_a_bad_list_query_is_400(api: Api) -> None:
    response = api.list(per_page=500)
    assert (response.status_code, response.json()["errorCode"]) == (400, "invalid_query_string")


def test_a_bad_checkpoint_is_400(api: Api) -> None:
    assert api.list(**{"from": "###"}).status_code == 400


def test_a_grant_can_be_read_back(api: Api) -> None:
    created = api.create({"client_id": "svc-00003", "audience": API, "scope": ["a"]}).json()
    response = api.get(created["id"])
    assert (response.status_code, response.json()) == (200, created)


def test_reading_an_unknown_grant_is_404_inexistent_client_grant(api: Api) -> None:
    response = api.get("cgr_0000000000000000")
    assert (response.status_code, response.json()["errorCode"]) == (404, "inexistent_client_grant")


def test_an_update_returns_the_whole_grant(api: Api) -> None:
    created = api.create(
        {"client_id": "svc-00004", "audience": API, "scope": ["a"], "subject_type": "user"}
    ).json()
    response = api.update(created["id"], {"scope": ["a", "b"], "authorization_details_types": []})
    assert response.status_code == 200
    assert response.json() == {**created, "scope": ["a", "b"], "authorization_details_types": []}


def test_an_update_to_allow_all_scopes_drops_scope(api: Api) -> None:
    created = api.create({"client_id": "svc-00005", "audience": API, "scope": ["a"]}).json()
    body = api.update(created["id"], {"allow_all_scopes": True}).json()
    assert "scope" not in body and body["allow_all_scopes"] is True


def test_an_update_of_an_immutable_field_is_400(api: Api) -> None:
    created = api.create({"client_id": "svc-00006", "audience": API}).json()
    response = api.update(created["id"], {"audience": BILLING})
    assert (response.status_code, response.json()["errorCode"]) == (400, "invalid_body")


def test_an_empty_update_is_400(api: Api) -> None:
    created = api.create({"client_id": "svc-00007", "audience": API}).json()
    assert api.update(created["id"], {}).status_code == 400


def test_updating_an_unknown_grant_is_404(api: Api) -> None:
    response = api.update("cgr_0000000000000000", {"scope": []})
    assert response.json() == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "The client grant does not exist.",
        "errorCode": "inexistent_client_grant",
    }


def test_delete_is_204_with_a_json_content_type_and_no_body(api: Api) -> None:
    created = api.create({"client_id": "svc-00008", "audience": API}).json()
    response = api.delete(created["id"])
    assert (response.status_code, response.content) == (204, b"")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert api.get(created["id"]).status_code == 404


def test_deleting_an_already_deleted_grant_is_204_again(api: Api) -> None:
    created = api.create({"client_id": "svc-00009", "audience": API}).json()
    assert [api.delete(created["id"]).status_code for _ in range(2)] == [204, 204]


def test_an_unknown_management_path_is_an_auth0_shaped_404(emu: RunningEmulator, api: Api) -> None:
    response = api.session.get(f"{emu.base_url}/api/v2/users", timeout=10)
    assert response.json() == {"statusCode": 404, "error": "Not Found", "message": "Not Found"}
