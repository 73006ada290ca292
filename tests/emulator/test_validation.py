"""Body and query rules, worded as Auth0 words them (pure, no HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from grant_worker.emulator.dialect import Dialect
from grant_worker.emulator.errors import ApiError
from grant_worker.emulator.validation import (
    coerce_form,
    parse_list_query,
    validate_create,
    validate_update,
)

DIALECT = Dialect()
AUDIENCE = "https://api.example.com/"


def create_error(body: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        validate_create(body, DIALECT)
    return caught.value


def update_error(body: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        validate_update(body)
    return caught.value


def test_a_complete_valid_create_body_passes_unchanged() -> None:
    body = {
        "client_id": "c",
        "audience": AUDIENCE,
        "organization_usage": "allow",
        "allow_any_organization": True,
        "scope": ["read:data"],
        "subject_type": "user",
        "authorization_details_types": ["payment"],
        "allow_all_scopes": False,
    }
    assert validate_create(body, DIALECT) == body


def test_an_unknown_field_is_an_additional_property() -> None:
    error = create_error({"audience": AUDIENCE, "client_id": "c", "scopes": ["x"]})
    assert (error.status, error.error_code) == (400, "invalid_body")
    assert error.message == "Payload validation error: 'Additional properties not allowed: scopes'."


def test_a_missing_audience_is_a_missing_required_property() -> None:
    error = create_error({"client_id": "c"})
    assert error.message == "Payload validation error: 'Missing required property: audience'."


def test_an_empty_audience_is_too_short() -> None:
    assert create_error({"audience": "", "client_id": "c"}).message == (
        "Payload validation error: 'String is too short (0 chars), minimum 1' on property "
        "audience (The audience (API identifier) of this client grant)."
    )


def test_a_wrongly_typed_field_names_both_types() -> None:
    assert create_error({"audience": AUDIENCE, "client_id": 7}).message == (
        "Payload validation error: 'Expected type string but found type integer' on property "
        "client_id (ID of the client)."
    )


def test_a_boolean_field_refuses_a_string() -> None:
    message = create_error({"audience": AUDIENCE, "allow_all_scopes": "yes"}).message
    assert "'Expected type boolean but found type string' on property allow_all_scopes" in message


def test_scope_must_be_an_array() -> None:
    message = create_error({"audience": AUDIENCE, "scope": "read:data"}).message
    assert "'Expected type array but found type string' on property scope " in message


@pytest.mark.parametrize(
    ("field", "value"),
    [("subject_type", "robot"), ("organization_usage", "maybe"), ("default_for", "everyone")],
)
def test_an_enum_field_refuses_other_values(field: str, value: str) -> None:
    message = create_error({"audience": AUDIENCE, field: value}).message
    assert f"'No enum match for: \"{value}\"' on property {field}" in message


def test_anonymous_user_is_a_subject_type_as_in_the_newest_sdks() -> None:
    assert validate_create({"audience": AUDIENCE, "subject_type": "anonymous_user"}, DIALECT)


def test_the_subject_type_enum_follows_the_dialect() -> None:
    strict = Dialect(subject_types=("client", "user"))
    with pytest.raises(ApiError):
        validate_create({"audience": AUDIENCE, "subject_type": "anonymous_user"}, strict)


@pytest.mark.parametrize("length", [1, 280])
def test_a_scope_item_of_1_to_280_chars_passes(length: int) -> None:
    assert validate_create({"audience": AUDIENCE, "scope": ["s" * length]}, DIALECT)


def test_a_scope_item_over_280_chars_is_too_long() -> None:
    message = create_error({"audience": AUDIENCE, "scope": ["ok", "s" * 281]}).message
    assert "'String is too long (281 chars), maximum 280' on property scope[1]" in message


def test_an_empty_scope_item_is_too_short() -> None:
    message = create_error({"audience": AUDIENCE, "scope": [""]}).message
    assert "'String is too short (0 chars), minimum 1' on property scope[0]" in message


def test_an_empty_scope_array_is_accepted() -> None:
    assert validate_create({"audience": AUDIENCE, "scope": []}, DIALECT)["scope"] == []


def test_a_scope_item_must_be_a_string() -> None:
    message = create_error({"audience": AUDIENCE, "scope": [3]}).message
    assert "'Expected type string but found type integer' on property scope[0]" in message


@pytest.mark.parametrize("length", [1, 255])
def test_an_authorization_details_type_of_1_to_255_chars_passes(length: int) -> None:
    body = {"audience": AUDIENCE, "authorization_details_types": ["t" * length]}
    assert validate_create(body, DIALECT)


@pytest.mark.parametrize(("length", "detail"), [(0, "too short (0"), (256, "too long (256")])
def test_an_authorization_details_type_outside_1_to_255_chars_fails(
    length: int, detail: str
) -> None:
    body = {"audience": AUDIENCE, "authorization_details_types": ["t" * length]}
    assert detail in create_error(body).message


def test_every_violation_is_reported_joined_by_also() -> None:
    message = create_error({"scope": "x", "bogus": 1}).message
    assert message.count(" (also) ") == 2
    assert message.startswith("Payload validation error: 'Additional properties not allowed")


def test_a_body_that_is_not_an_object_is_refused() -> None:
    assert create_error(["audience"]).message == (
        "Payload validation error: 'Expected type object but found type array'."
    )


def test_an_empty_update_has_too_few_properties() -> None:
    assert update_error({}).message == (
        "Payload validation error: 'Too few properties defined (0), minimum 1'."
    )


@pytest.mark.parametrize("field", ["client_id", "audience", "subject_type", "default_for"])
def test_an_update_of_an_immutable_field_is_refused(field: str) -> None:
    error = update_error({field: "x"})
    assert (
        error.message == f"Payload validation error: 'Additional properties not allowed: {field}'."
    )


@pytest.mark.parametrize(
    "field", ["scope", "organization_usage", "allow_any_organization", "allow_all_scopes"]
)
def test_an_update_may_null_the_nullable_fields(field: str) -> None:
    assert validate_update({field: None}) == {field: None}


def test_an_update_may_not_null_authorization_details_types() -> None:
    message = update_error({"authorization_details_types": None}).message
    assert "'Expected type array but found type null'" in message


def test_an_update_checks_scope_item_lengths() -> None:
    assert "maximum 280" in update_error({"scope": ["s" * 281]}).message


def test_a_form_body_becomes_the_json_shape() -> None:
    form = {
        "audience": [AUDIENCE],
        "client_id": ["c"],
        "scope": ["a", "b"],
        "allow_any_organization": ["true"],
    }
    assert coerce_form(form, DIALECT) == {
        "audience": AUDIENCE,
        "client_id": "c",
        "scope": ["a", "b"],
        "allow_any_organization": True,
    }


def test_a_list_query_without_paging_parameters_is_a_bare_array_of_50() -> None:
    query = parse_list_query({}, DIALECT)
    assert (query.mode, query.page, query.per_page) == ("array", 0, 50)


def test_include_totals_selects_the_offset_object() -> None:
    query = parse_list_query({"include_totals": "true", "page": "2", "per_page": "10"}, DIALECT)
    assert (query.mode, query.page, query.per_page) == ("totals", 2, 10)


@pytest.mark.parametrize("present", [{"take": "5"}, {"from": "abc"}])
def test_from_or_take_selects_checkpoint_paging_even_with_include_totals(
    present: dict[str, str],
) -> None:
    query = parse_list_query({"include_totals": "true", "per_page": "50", **present}, DIALECT)
    assert query.mode == "checkpoint"


def test_the_list_filters_are_collected() -> None:
    query = parse_list_query(
        {
            "audience": AUDIENCE,
            "client_id": "c",
            "allow_any_organization": "true",
            "subject_type": "user",
            "default_for": "third_party_clients",
        },
        DIALECT,
    )
    assert query.filters == {
        "audience": AUDIENCE,
        "client_id": "c",
        "allow_any_organization": True,
        "subject_type": "user",
        "default_for": "third_party_clients",
    }


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ({"per_page": "0"}, "Value 0 is less than minimum 1"),
        ({"per_page": "101"}, "Value 101 is greater than maximum 100"),
        ({"take": "101"}, "Value 101 is greater than maximum 100"),
        ({"page": "-1"}, "Value -1 is less than minimum 0"),
        ({"page": "two"}, "Expected type integer but found type string"),
        ({"allow_any_organization": "false"}, 'No enum match for: "false"'),
    ],
)
def test_a_bad_list_query_is_an_invalid_query_string(query: dict[str, str], detail: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_list_query(query, DIALECT)
    assert caught.value.error_code == "invalid_query_string"
    assert f"Query validation error: '{detail}' on property " in caught.value.message
