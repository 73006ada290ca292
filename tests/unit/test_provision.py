"""The orchestration over a scripted transport, with a fake clock: no network, no sleeping.

Each test scripts what the tenant answers and reads what the provisioner did: the resolution,
the error, the calls it made and the waits it chose.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from grant_worker.tasks.errors import (
    BadRequest,
    ConflictUnresolved,
    GrantConflict,
    NetworkError,
    UpstreamError,
)
from grant_worker.tasks.flow.retry_policy import RetryPolicy
from grant_worker.tasks.messages.models import GrantRequest
from grant_worker.tasks.provision import Provisioner
from tests.unit.test_auth0_api import Reply, ScriptedTenant, api_over, grant_body, token_reply

GRANTS = "/api/v2/client-grants"
NOW = 1_800_000_000.0
CONFLICT = Reply(
    409,
    {
        "statusCode": 409,
        "error": "Conflict",
        "message": "A client grant already exists between svc-1 and https://api.example.com/",
    },
)
UNAVAILABLE = Reply(503, {"statusCode": 503, "error": "Service Unavailable", "message": "x"})


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def grant_request(on_conflict: str = "keep", **grant: Any) -> GrantRequest:
    body = {"client_id": "svc-1", "audience": "https://api.example.com/", **grant}
    return GrantRequest.model_validate({"grant": body, "on_conflict": on_conflict})


def existing(**fields: Any) -> Reply:
    return Reply(200, {"client_grants": [grant_body(id="cgr_existing", **fields)]})


def connect_error() -> requests.ConnectionError:
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    return requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused")))  # type: ignore[arg-type]


@pytest.fixture
def tenant() -> ScriptedTenant:
    return ScriptedTenant().script("POST", "/oauth/token", token_reply())


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def provisioner(tenant: ScriptedTenant, fake: FakeTime, budget_s: float = 30.0) -> Provisioner:
    policy = RetryPolicy(
        budget_s=budget_s,
        backoff_initial_s=1.0,
        backoff_max_s=8.0,
        backoff_jitter_ratio=0.0,
        rate_limit_jitter_s=0.0,
    )
    return Provisioner(
        api_over(tenant),
        None,
        policy,
        clock=fake.clock,
        sleep=fake.sleep,
        epoch_clock=lambda: NOW,
        random=lambda: 0.5,
    )


def test_a_new_grant_is_created_in_one_counted_call(tenant: ScriptedTenant, fake: FakeTime) -> None:
    tenant.script("POST", GRANTS, Reply(201, grant_body()))
    resolution = provisioner(tenant, fake).provision(grant_request(scope=["read:x"]))
    assert resolution.status == "created"
    assert resolution.grant.id == "cgr_0000000000000001"
    assert resolution.differences is None
    assert resolution.attempts == 1  # the POST; the token request is not counted


def test_before_send_runs_just_before_each_post(tenant: ScriptedTenant, fake: FakeTime) -> None:
    tenant.script("POST", GRANTS, UNAVAILABLE, Reply(201, grant_body()))
    tenant.script("GET", GRANTS, Reply(200, {"client_grants": []}))
    marks: list[int] = []
    provisioner(tenant, fake).provision(
        grant_request(), before_send=lambda: marks.append(len(tenant.sent))
    )
    # after the token call (1 sent), and after the first POST and the lookup its 503 led to
    assert marks == [1, 3]


def test_server_errors_are_retried_with_backoff_until_created(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, UNAVAILABLE, UNAVAILABLE, Reply(201, grant_body()))
    tenant.script("GET", GRANTS, Reply(200, {"client_grants": []}))
    resolution = provisioner(tenant, fake).provision(grant_request())
    assert resolution.status == "created"
    assert resolution.resolved_by is None
    assert resolution.attempts == 5  # three POSTs, and a lookup after each 503
    assert fake.sleeps == [1.0, 2.0]


def test_a_429_waits_until_the_reset_the_server_names(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    limited = Reply(429, {"statusCode": 429}, {"x-ratelimit-reset": str(int(NOW) + 3)})
    tenant.script("POST", GRANTS, limited, Reply(201, grant_body()))
    assert provisioner(tenant, fake).provision(grant_request()).status == "created"
    assert fake.sleeps == [3.0]


def test_a_final_error_ends_the_request_at_once_with_its_attempts(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    body = {"statusCode": 400, "message": "Client of type express_configuration cannot be used"}
    tenant.script("POST", GRANTS, Reply(400, {**body, "errorCode": "validation_error"}))
    with pytest.raises(BadRequest) as caught:
        provisioner(tenant, fake).provision(grant_request())
    assert caught.value.attempts == 1
    assert caught.value.auth0_error_code == "validation_error"
    assert fake.sleeps == []


def test_an_outage_longer_than_the_budget_ends_in_the_last_upstream_error(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, UNAVAILABLE)
    tenant.script("GET", GRANTS, Reply(200, {"client_grants": []}))
    with pytest.raises(UpstreamError) as caught:
        provisioner(tenant, fake, budget_s=10.0).provision(grant_request())
    assert fake.sleeps == [1.0, 2.0, 4.0]  # the next, 8 s, would end past 10 s
    assert caught.value.attempts == 8  # four POSTs, each 503 followed by a lookup
    assert caught.value.code == "upstream_error"


def test_keep_returns_the_existing_grant_with_its_differences(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, CONFLICT)
    tenant.script("GET", GRANTS, existing(scope=["read:x", "read:y"]))
    resolution = provisioner(tenant, fake).provision(grant_request(scope=["read:x", "read:z"]))
    assert resolution.status == "exists"
    assert resolution.grant.id == "cgr_existing"
    assert resolution.differences == {"scope": {"missing": ["read:z"], "extra": ["read:y"]}}
    assert resolution.attempts == 2  # the POST and the lookup
    assert tenant.calls("PATCH", f"{GRANTS}/cgr_existing") == []


def test_merge_patches_the_union_of_scopes(tenant: ScriptedTenant, fake: FakeTime) -> None:
    tenant.script("POST", GRANTS, CONFLICT)
    tenant.script("GET", GRANTS, existing(scope=["read:x"]))
    tenant.script(
        "PATCH",
        f"{GRANTS}/cgr_existing",
        Reply(200, grant_body(id="cgr_existing", scope=["read:x", "read:z"])),
    )
    resolution = provisioner(tenant, fake).provision(grant_request("merge", scope=["read:z"]))
    assert resolution.status == "updated"
    assert resolution.grant.scope == ["read:x", "read:z"]
    (patch,) = tenant.calls("PATCH", f"{GRANTS}/cgr_existing")
    assert json.loads(patch.body or b"") == {"scope": ["read:x", "read:z"]}


def test_replace_of_an_already_equal_grant_is_exists(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, CONFLICT)
    tenant.script("GET", GRANTS, existing(scope=["read:x"]))
    resolution = provisioner(tenant, fake).provision(grant_request("replace", scope=["read:x"]))
    assert resolution.status == "exists"
    assert resolution.differences is None


def test_fail_raises_conflict_for_someone_elses_grant(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, CONFLICT)
    with pytest.raises(GrantConflict) as caught:
        provisioner(tenant, fake).provision(grant_request("fail"))
    assert caught.value.code == "conflict"
    assert caught.value.attempts == 1
    assert "already exists" in caught.value.message


def test_a_possibly_sent_create_whose_grant_equals_the_request_is_created_by_lookup(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, CONFLICT)
    tenant.script("GET", GRANTS, existing(scope=[]))
    resolution = provisioner(tenant, fake).provision(grant_request("fail"), sent_before=True)
    assert resolution.status == "created"
    assert resolution.resolved_by == "lookup"


def test_fail_stays_conflict_when_the_grant_differs_even_if_an_earlier_delivery_sent(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    # The finding: an existing grant with read:data, a `fail` request for write:data whose
    # earlier delivery was killed mid-POST. A grant that differs was never our create.
    tenant.script("POST", GRANTS, CONFLICT)
    tenant.script("GET", GRANTS, existing(scope=["read:data"]))
    with pytest.raises(GrantConflict):
        provisioner(tenant, fake).provision(
            grant_request("fail", scope=["write:data"]), sent_before=True
        )


def test_a_5xx_is_resolved_by_a_lookup_before_posting_again(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, UNAVAILABLE, CONFLICT)
    tenant.script("GET", GRANTS, existing(scope=[]))
    resolution = provisioner(tenant, fake).provision(grant_request("fail"))
    assert (resolution.status, resolution.resolved_by) == ("created", "lookup")
    assert len(tenant.calls("POST", GRANTS)) == 1


def test_a_lost_reply_is_resolved_by_a_lookup_before_posting_again(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, requests.exceptions.ReadTimeout(), CONFLICT)
    tenant.script("GET", GRANTS, existing(scope=[]))
    resolution = provisioner(tenant, fake).provision(grant_request("fail"))
    assert (resolution.status, resolution.resolved_by) == ("created", "lookup")
    assert len(tenant.calls("POST", GRANTS)) == 1


def test_a_slow_tenants_grant_is_found_by_the_lookup_after_a_later_timeout(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    # A slow tenant: every POST times out, the first one's grant shows up later.
    tenant.script("POST", GRANTS, requests.exceptions.ReadTimeout())
    tenant.script("GET", GRANTS, Reply(200, {"client_grants": []}), existing(scope=[]))
    resolution = provisioner(tenant, fake).provision(grant_request())
    assert (resolution.status, resolution.resolved_by) == ("created", "lookup")
    assert len(tenant.calls("POST", GRANTS)) == 2


class RecordingMarker:
    def __init__(self, fresh: bool = True) -> None:
        self.fresh = fresh
        self.calls: list[str] = []

    def sending(self) -> bool:
        self.calls.append("sending")
        return self.fresh

    def refused(self) -> None:
        self.calls.append("refused")

    def lost(self) -> None:
        self.calls.append("lost")

    def created(self) -> None:
        self.calls.append("created")

    def sending_write(self) -> None:
        return None


def test_a_clean_409_takes_back_the_sent_mark_it_put_there(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, CONFLICT)
    marker = RecordingMarker()
    with pytest.raises(GrantConflict):
        provisioner(tenant, fake).provision(grant_request("fail"), marker=marker)
    assert marker.calls == ["sending", "refused"]


def test_a_clean_409_keeps_an_earlier_deliverys_mark(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, CONFLICT)
    tenant.script("GET", GRANTS, existing(scope=["read:data"]))
    marker = RecordingMarker(fresh=False)
    with pytest.raises(GrantConflict):
        provisioner(tenant, fake).provision(
            grant_request("fail", scope=["write:data"]), sent_before=True, marker=marker
        )
    assert marker.calls == ["sending"]


def test_a_lost_reply_and_a_201_are_marked_as_such(tenant: ScriptedTenant, fake: FakeTime) -> None:
    tenant.script("POST", GRANTS, UNAVAILABLE, Reply(201, grant_body()))
    tenant.script("GET", GRANTS, Reply(200, {"client_grants": []}))
    marker = RecordingMarker()
    provisioner(tenant, fake).provision(grant_request(), marker=marker)
    assert marker.calls == ["sending", "lost", "sending", "created"]


def test_fail_still_fails_when_the_earlier_attempt_never_connected(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, connect_error(), CONFLICT)
    with pytest.raises(GrantConflict):
        provisioner(tenant, fake).provision(grant_request("fail"))


def test_merge_after_a_lost_reply_patches_the_grant_it_finds(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, requests.exceptions.ReadTimeout(), CONFLICT)
    tenant.script("GET", GRANTS, existing(scope=["a"]))
    tenant.script(
        "PATCH",
        f"{GRANTS}/cgr_existing",
        Reply(200, grant_body(id="cgr_existing", scope=["a", "b"])),
    )
    resolution = provisioner(tenant, fake).provision(grant_request("merge", scope=["a", "b"]))
    assert resolution.status == "updated"


def test_a_conflict_whose_grant_vanished_is_created_again(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, CONFLICT, Reply(201, grant_body()))
    tenant.script("GET", GRANTS, Reply(200, {"client_grants": []}))
    resolution = provisioner(tenant, fake).provision(grant_request())
    assert resolution.status == "created"
    assert len(tenant.calls("POST", GRANTS)) == 2


def test_a_grant_deleted_before_its_patch_is_created_again(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, CONFLICT, Reply(201, grant_body()))
    tenant.script("GET", GRANTS, existing(scope=[]))
    gone = Reply(404, {"statusCode": 404, "message": "The client grant does not exist."})
    tenant.script("PATCH", f"{GRANTS}/cgr_existing", gone)
    resolution = provisioner(tenant, fake).provision(grant_request("replace", scope=["a"]))
    assert resolution.status == "created"


def test_a_conflict_that_never_resolves_is_a_retryable_unresolved_conflict(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, CONFLICT)
    tenant.script("GET", GRANTS, Reply(200, {"client_grants": []}))
    with pytest.raises(ConflictUnresolved) as caught:
        provisioner(tenant, fake).provision(grant_request())
    assert caught.value.retryable
    assert caught.value.code == "upstream_error"
    assert len(tenant.calls("POST", GRANTS)) == 3  # the first and two re-creates


def test_lookups_are_retried_within_the_same_budget(tenant: ScriptedTenant, fake: FakeTime) -> None:
    tenant.script("POST", GRANTS, CONFLICT)
    tenant.script("GET", GRANTS, UNAVAILABLE, existing(scope=[]))
    resolution = provisioner(tenant, fake).provision(grant_request())
    assert resolution.status == "exists"
    assert resolution.attempts == 3


def test_network_errors_that_outlast_the_budget_end_in_network_error(
    tenant: ScriptedTenant, fake: FakeTime
) -> None:
    tenant.script("POST", GRANTS, connect_error())
    with pytest.raises(NetworkError) as caught:
        provisioner(tenant, fake, budget_s=2.0).provision(grant_request())
    assert caught.value.code == "network_error"
    assert caught.value.attempts == 2
