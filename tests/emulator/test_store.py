"""The grant store: ids, uniqueness, rendering, paging (pure)."""

from __future__ import annotations

import random
import re

import pytest

from grant_worker.emulator.store import RESPONSE_ORDER, BadCheckpoint, DuplicateGrant, GrantStore

API = "https://api.example.com/"


def store_with(count: int, client_prefix: str = "c") -> GrantStore:
    store = GrantStore(random.Random(1))
    for n in range(count):
        store.add(audience=API, subject_type="client", client_id=f"{client_prefix}{n}")
    return store


def test_ids_are_cgr_and_16_alphanumerics() -> None:
    grant = store_with(1).select({})[0]
    assert re.fullmatch(r"cgr_[A-Za-z0-9]{16}", grant.id)


def test_a_second_grant_for_the_same_client_audience_and_subject_type_is_a_duplicate() -> None:
    store = store_with(1)
    with pytest.raises(DuplicateGrant) as caught:
        store.add(audience=API, subject_type="client", client_id="c0")
    assert caught.value.existing.client_id == "c0"


def test_the_same_client_and_audience_may_hold_one_grant_per_subject_type() -> None:
    store = store_with(1)
    store.add(audience=API, subject_type="user", client_id="c0")
    assert len(store) == 2


def test_a_second_default_grant_for_the_same_audience_is_a_duplicate() -> None:
    store = GrantStore()
    store.add(audience=API, subject_type="client", default_for="third_party_clients")
    with pytest.raises(DuplicateGrant):
        store.add(audience=API, subject_type="client", default_for="third_party_clients")


def test_a_deleted_grant_frees_its_key() -> None:
    store = store_with(1)
    grant = store.select({})[0]
    assert store.delete(grant.id) is True
    store.add(audience=API, subject_type="client", client_id="c0")
    assert len(store) == 1


def test_deleting_an_unknown_id_reports_false() -> None:
    assert GrantStore().delete("cgr_nope") is False


def test_a_grant_renders_only_the_fields_that_were_set() -> None:
    grant = GrantStore().add(audience=API, subject_type="client", client_id="c")
    assert grant.to_json() == {
        "id": grant.id,
        "client_id": "c",
        "audience": API,
        "subject_type": "client",
    }


def test_a_grant_renders_in_auth0s_key_order() -> None:
    grant = GrantStore().add(
        audience=API,
        subject_type="user",
        client_id="c",
        is_system=True,
        settings={
            "allow_all_scopes": False,
            "authorization_details_types": ["payment"],
            "allow_any_organization": True,
            "organization_usage": "allow",
            "scope": ["a"],
        },
    )
    rendered = list(grant.to_json())
    assert rendered == [name for name in RESPONSE_ORDER if name != "default_for"]


def test_scope_is_not_rendered_under_allow_all_scopes() -> None:
    grant = GrantStore().add(
        audience=API, subject_type="client", client_id="c", settings={"allow_all_scopes": True}
    )
    assert "scope" not in grant.to_json()


def test_an_update_with_null_removes_the_field() -> None:
    store = GrantStore()
    grant = store.add(
        audience=API, subject_type="client", client_id="c", settings={"organization_usage": "deny"}
    )
    assert (
        "organization_usage" not in store.update(grant.id, {"organization_usage": None}).to_json()
    )


def test_turning_allow_all_scopes_on_drops_the_stored_scope() -> None:
    store = GrantStore()
    grant = store.add(audience=API, subject_type="client", client_id="c", settings={"scope": ["a"]})
    store.update(grant.id, {"allow_all_scopes": True})
    store.update(grant.id, {"allow_all_scopes": False})
    assert "scope" not in grant.to_json()


def test_rendering_returns_copies_not_the_stored_lists() -> None:
    grant = GrantStore().add(
        audience=API, subject_type="client", client_id="c", settings={"scope": ["a"]}
    )
    grant.to_json()["scope"].append("b")
    assert grant.to_json()["scope"] == ["a"]


def test_select_filters_on_every_given_field_in_creation_order() -> None:
    store = store_with(3)
    store.add(audience="https://other/", subject_type="client", client_id="c1")
    found = store.select({"audience": API})
    assert [g.client_id for g in found] == ["c0", "c1", "c2"]
    assert [g.audience for g in store.select({"client_id": "c1"})] == [API, "https://other/"]


def test_an_offset_page_returns_its_slice_and_the_total() -> None:
    page, total = store_with(5).page_offset({}, page=1, per_page=2)
    assert ([g.client_id for g in page], total) == (["c2", "c3"], 5)


def test_checkpoint_pages_cover_every_grant_once() -> None:
    store = store_with(7)
    seen: list[str | None] = []
    token: str | None = None
    while True:
        page, token = store.page_checkpoint({}, token, take=3)
        seen += [g.client_id for g in page]
        if token is None:
            break
    assert seen == [f"c{n}" for n in range(7)]


def test_the_last_checkpoint_page_has_no_next() -> None:
    assert store_with(3).page_checkpoint({}, None, take=3)[1] is None


def test_a_deleted_grant_between_checkpoint_pages_skips_nothing_else() -> None:
    store = store_with(4)
    first, token = store.page_checkpoint({}, None, take=2)
    store.delete(first[0].id)
    rest, _ = store.page_checkpoint({}, token, take=10)
    assert [g.client_id for g in rest] == ["c2", "c3"]


def test_a_grant_id_is_accepted_as_a_checkpoint() -> None:
    store = store_with(3)
    second = store.select({})[1]
    page, _ = store.page_checkpoint({}, second.id, take=10)
    assert [g.client_id for g in page] == ["c1", "c2"]


@pytest.mark.parametrize("bad", ["not-base64!", "bm9wZQ==", "c2VxOng="])
def test_an_unusable_checkpoint_is_refused(bad: str) -> None:
    with pytest.raises(BadCheckpoint):
        store_with(1).page_checkpoint({}, bad, take=1)


def test_the_same_rng_seed_gives_the_same_ids() -> None:
    assert [g.id for g in store_with(3)] == [g.id for g in store_with(3)]
