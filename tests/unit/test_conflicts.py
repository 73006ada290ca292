"""409 resolution, pure: the lookup, the differences, the PATCH of each mode."""

from __future__ import annotations

from typing import Any

from grant_worker.tasks.conflicts import (
    differences,
    effective_mode,
    is_equal,
    lookup_filters,
    merge_patch,
    pick,
    plan,
    replace_patch,
)
from grant_worker.tasks.messages.models import CreateClientGrant, Grant

API = "https://api.example.com/"


def request(**fields: Any) -> CreateClientGrant:
    fields.setdefault("audience", API)
    if "default_for" not in fields:
        fields.setdefault("client_id", "svc-1")
    return CreateClientGrant(**fields)


def grant(**fields: Any) -> Grant:
    values: dict[str, Any] = {"id": "cgr_1", "client_id": "svc-1", "audience": API}
    values.update(fields)
    return Grant(**values)


# -- finding the grant -------------------------------------------------------------------------


def test_a_client_grant_is_looked_up_by_client_audience_and_subject_type() -> None:
    assert lookup_filters(request(scope=["a"])) == {
        "audience": API,
        "client_id": "svc-1",
        "subject_type": "client",
    }


def test_a_default_grant_is_looked_up_by_default_for_and_audience() -> None:
    assert lookup_filters(request(default_for="third_party_clients", subject_type="user")) == {
        "audience": API,
        "default_for": "third_party_clients",
        "subject_type": "user",
    }


def test_the_pick_takes_the_grant_with_the_requests_subject_type() -> None:
    user = grant(id="cgr_user", subject_type="user")
    client = grant(id="cgr_client")  # no subject_type: an older tenant, meaning client
    assert pick(request(), [user, client]) == client
    assert pick(request(subject_type="user"), [client, user]) == user


def test_the_pick_finds_nothing_when_the_grant_has_gone() -> None:
    assert pick(request(), [grant(client_id="svc-2")]) is None


def test_the_pick_does_not_take_a_clients_grant_for_a_default_grant() -> None:
    default = grant(id="cgr_default", client_id=None, default_for="third_party_clients")
    assert pick(request(default_for="third_party_clients"), [grant(), default]) == default


# -- differences ---------------------------------------------------------------------------------


def test_an_equal_grant_has_no_differences() -> None:
    assert differences(request(scope=["b", "a"]), grant(scope=["a", "b"])) is None


def test_absent_settings_compare_as_auth0s_defaults() -> None:
    existing = grant(scope=[], organization_usage="deny", allow_any_organization=False)
    assert differences(request(), existing) is None


def test_differences_name_missing_and_extra_scopes_and_each_setting() -> None:
    wanted = request(
        scope=["read:a", "read:b"], organization_usage="allow", authorization_details_types=["p"]
    )
    existing = grant(scope=["read:b", "read:c"], allow_any_organization=True)
    assert differences(wanted, existing) == {
        "scope": {"missing": ["read:a"], "extra": ["read:c"]},
        "authorization_details_types": {"missing": ["p"], "extra": []},
        "organization_usage": {"requested": "allow", "actual": "deny"},
        "allow_any_organization": {"requested": False, "actual": True},
    }


def test_scopes_are_not_compared_while_all_scopes_are_allowed() -> None:
    existing = grant(allow_all_scopes=True)
    assert differences(request(scope=["a"]), existing) == {
        "allow_all_scopes": {"requested": False, "actual": True}
    }


# -- keep ------------------------------------------------------------------------------------------


def test_keep_never_patches_and_reports_the_differences() -> None:
    decided = plan("keep", request(scope=["a", "b"]), grant(scope=["a"]))
    assert decided.patch is None
    assert decided.differences == {"scope": {"missing": ["b"], "extra": []}}


# -- merge -----------------------------------------------------------------------------------------


def test_merge_adds_only_the_missing_scopes_after_the_existing_ones() -> None:
    assert merge_patch(request(scope=["c", "a", "d"]), grant(scope=["a", "b"])) == {
        "scope": ["a", "b", "c", "d"]
    }


def test_merge_with_nothing_missing_changes_nothing_and_reports_the_rest() -> None:
    decided = plan(
        "merge", request(scope=["a"], organization_usage="allow"), grant(scope=["a", "b"])
    )
    assert decided.patch is None
    assert decided.differences == {
        "scope": {"missing": [], "extra": ["b"]},
        "organization_usage": {"requested": "allow", "actual": "deny"},
    }


def test_merge_never_touches_settings_other_than_scopes() -> None:
    patch = merge_patch(request(scope=["x"], organization_usage="require"), grant(scope=[]))
    assert patch == {"scope": ["x"]}


def test_merge_asking_for_all_scopes_turns_them_on() -> None:
    assert merge_patch(request(allow_all_scopes=True), grant(scope=["a"])) == {
        "allow_all_scopes": True
    }


def test_merge_into_a_grant_that_allows_all_scopes_has_nothing_to_add() -> None:
    assert merge_patch(request(scope=["a"]), grant(allow_all_scopes=True)) is None


# -- replace ---------------------------------------------------------------------------------------


def test_replace_sets_every_differing_patchable_field_to_the_request() -> None:
    wanted = request(
        scope=["a"],
        organization_usage="allow",
        allow_any_organization=True,
        authorization_details_types=["payment"],
    )
    existing = grant(scope=["a", "b"], authorization_details_types=["shipping"])
    assert replace_patch(wanted, existing) == {
        "scope": ["a"],
        "organization_usage": "allow",
        "allow_any_organization": True,
        "authorization_details_types": ["payment"],
    }


def test_replace_of_an_equal_grant_changes_nothing() -> None:
    wanted = request(scope=["a", "b"], organization_usage="deny")
    decided = plan("replace", wanted, grant(scope=["b", "a"]))
    assert decided.patch is None
    assert decided.differences is None


def test_replace_resets_settings_the_request_left_out_to_their_defaults() -> None:
    existing = grant(scope=["a"], organization_usage="require", allow_any_organization=True)
    assert replace_patch(request(scope=["a"]), existing) == {
        "organization_usage": "deny",
        "allow_any_organization": False,
    }


def test_replace_turning_all_scopes_off_sets_the_requested_scopes() -> None:
    assert replace_patch(request(scope=["a"]), grant(allow_all_scopes=True)) == {
        "allow_all_scopes": False,
        "scope": ["a"],
    }


def test_replace_turning_all_scopes_on_sends_no_scope_list() -> None:
    assert replace_patch(request(allow_all_scopes=True), grant(scope=["a"])) == {
        "allow_all_scopes": True
    }


def test_replace_never_patches_immutable_fields() -> None:
    patch = replace_patch(request(scope=["a"], subject_type="user"), grant(scope=[]))
    assert patch is not None
    assert set(patch) <= {
        "scope",
        "organization_usage",
        "allow_any_organization",
        "authorization_details_types",
        "allow_all_scopes",
    }


# -- fail ------------------------------------------------------------------------------------------


def test_fail_fails_whoever_may_have_sent_what() -> None:
    assert effective_mode("fail") is None


def test_a_grant_equal_to_the_request_is_recognised_as_its_own_create() -> None:
    requested = CreateClientGrant(client_id="svc-1", audience="https://api/", scope=["a", "b"])
    same = Grant(id="cgr_1", client_id="svc-1", audience="https://api/", scope=["b", "a"])
    other = Grant(id="cgr_1", client_id="svc-1", audience="https://api/", scope=["a"])
    assert is_equal(requested, same)
    assert not is_equal(requested, other)


def test_the_other_modes_apply_whoever_created_the_grant() -> None:
    assert [effective_mode(m) for m in ("keep", "merge", "replace")] == [
        "keep",
        "merge",
        "replace",
    ]
