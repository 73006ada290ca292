"""The revoke envelope's rules, its fingerprint, and the sync decisions (pure)."""

from __future__ import annotations

import pytest

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.models import Grant
from grant_worker.tasks.messages.validation import parse_request
from grant_worker.tasks.outcomes.claims import fingerprint
from grant_worker.tasks.revoke import ProtectedGrants
from grant_worker.worker.cli.bulk.rows import Checked, Row
from grant_worker.worker.cli.sync.plan import decide, desired_rows, summarise

API = "https://api.example.com/"
MGMT = "https://tenant.example.com/api/v2/"


def test_a_revoke_names_its_grant_by_key_or_by_id() -> None:
    by_key = parse_request({"action": "revoke", "grant": {"client_id": "c", "audience": API}})
    by_id = parse_request({"action": "revoke", "grant_id": "cgr_abc123"})
    assert (by_key.action, by_id.grant_id) == ("revoke", "cgr_abc123")
    assert by_id.wire() == {"action": "revoke", "grant_id": "cgr_abc123"}
    assert "action" not in parse_request({"grant": {"client_id": "c", "audience": API}}).wire()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"action": "revoke"}, "names its grant by grant or grant_id"),
        ({"action": "revoke", "grant_id": "nope"}, "grant_id: must match"),
        ({"action": "revoke", "grant": {"client_id": "c", "audience": API, "scope": ["a"]}},
         "grant.scope: not allowed in a revoke"),
        ({"grant_id": "cgr_abc", "grant": {"client_id": "c", "audience": API}},
         'only with on_conflict "replace"'),
        ({"action": "remove", "grant_id": "cgr_abc"}, "action: must be one of"),
    ],
)  # fmt: skip
def test_bad_revokes_are_refused_naming_the_field_and_the_rule(
    raw: dict[str, object], problem: str
) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_request(raw)
    assert problem in caught.value.message


def test_a_revoke_and_a_create_of_the_same_grant_have_different_fingerprints() -> None:
    grant = {"client_id": "c", "audience": API}
    create = parse_request({"grant": grant})
    revoke = parse_request({"action": "revoke", "grant": grant})
    assert fingerprint(create) != fingerprint(revoke)


def test_the_own_grant_and_system_grants_are_protected() -> None:
    rules = ProtectedGrants(MGMT, "worker")
    assert rules.reason(Grant(id="cgr_1", client_id="worker", audience=MGMT)) is not None
    assert rules.reason(Grant(id="cgr_2", client_id="x", audience=API, is_system=True))
    assert rules.reason(Grant(id="cgr_3", client_id="worker", audience=API)) is None
    assert rules.reason(Grant(id="cgr_4", client_id="other", audience=MGMT)) is None


def _checked(*grants: dict[str, object]) -> Checked:
    rows = [Row(n, parse_request({"request_id": f"r{n}", "grant": g}))
            for n, g in enumerate(grants, start=1)]  # fmt: skip
    return Checked(batch_id="b", rows=rows)


def test_sync_decides_create_update_unchanged_revoke_and_keeps_protected() -> None:
    rows, problems = desired_rows(
        _checked({"client_id": "a", "audience": API, "scope": ["x"]},
                 {"client_id": "b", "audience": API, "scope": ["x", "y"]},
                 {"client_id": "n", "audience": API}),
        API, "s-1",
    )  # fmt: skip
    existing = [
        Grant(id="cgr_a", client_id="a", audience=API, scope=["x"]),
        Grant(id="cgr_b", client_id="b", audience=API, scope=["x"]),
        Grant(id="cgr_z", client_id="z", audience=API),
        Grant(id="cgr_s", client_id="s", audience=API, is_system=True),
    ]
    actions = decide(rows, existing, audience=API, prune=True,
                     protected=ProtectedGrants(MGMT, "worker"), batch_id="s-1")  # fmt: skip
    assert problems == []
    assert summarise(actions) == {"create": 1, "update": 1, "revoke": 1, "unchanged": 1,
                                  "protected": 1}  # fmt: skip
    assert all(a.request is None for a in actions if a.action in ("unchanged", "protected"))
    assert all(a.request.on_conflict == "replace" for a in actions
               if a.request and a.action != "revoke")  # fmt: skip
    again = decide(rows, existing, audience=API, prune=True,
                   protected=ProtectedGrants(MGMT, "worker"), batch_id="s-1")  # fmt: skip
    assert [a.request_id for a in again] == [a.request_id for a in actions]


def test_sync_rows_must_be_on_the_audience_and_name_each_grant_once() -> None:
    _rows, problems = desired_rows(
        _checked({"client_id": "a", "audience": API},
                 {"client_id": "a", "audience": API, "scope": ["x"]},
                 {"client_id": "b", "audience": "https://other/"}),
        API, "s-1",
    )  # fmt: skip
    texts = [text for problem in problems for text in problem.problems]
    assert any("the same grant as line 1" in text for text in texts)
    assert any("grant.audience: must be" in text for text in texts)


def test_sync_names_the_listed_grant_so_updates_and_revokes_take_one_call() -> None:
    rows, _problems = desired_rows(
        _checked({"client_id": "b", "audience": API, "scope": ["x", "y"]}), API, "s-1"
    )
    existing = [
        Grant(id="cgr_b", client_id="b", audience=API, scope=["x"]),
        Grant(id="cgr_z", client_id="z", audience=API),
    ]
    update, revoke = decide(rows, existing, audience=API, prune=True,
                            protected=ProtectedGrants(MGMT, "worker"), batch_id="s-1")  # fmt: skip
    assert update.request is not None and revoke.request is not None
    assert (update.request.grant_id, update.request.on_conflict) == ("cgr_b", "replace")
    assert revoke.request.grant_id == "cgr_z"
    assert revoke.request.grant is not None and revoke.request.grant.client_id == "z"
    # The listed id is a hint: the request id and fingerprint are the row's own.
    plain = rows[0].request
    assert update.request_id == plain.request_id
    assert fingerprint(update.request) == fingerprint(plain)


def test_a_create_names_a_grant_id_only_to_replace_it() -> None:
    grant = {"client_id": "c", "audience": API}
    named = parse_request({"grant": grant, "grant_id": "cgr_abc", "on_conflict": "replace"})
    assert named.grant_id == "cgr_abc"
    with pytest.raises(RequestInvalid):
        parse_request({"grant": grant, "grant_id": "cgr_abc", "on_conflict": "merge"})


def test_the_full_replace_patch_resets_what_the_request_leaves_out() -> None:
    from grant_worker.tasks.conflicts import full_replace_patch
    from grant_worker.tasks.messages.models import CreateClientGrant

    plain = CreateClientGrant(client_id="c", audience=API, scope=["b", "a", "b"])
    assert full_replace_patch(plain) == {
        "allow_all_scopes": None, "organization_usage": None, "allow_any_organization": None,
        "authorization_details_types": [], "scope": ["b", "a"],
    }  # fmt: skip
    everything = CreateClientGrant(client_id="c", audience=API, allow_all_scopes=True)
    assert full_replace_patch(everything)["allow_all_scopes"] is True
    assert "scope" not in full_replace_patch(everything)
