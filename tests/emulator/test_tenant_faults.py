"""The emulator behaves like a real tenant for flow control: rate-limit headers and their two
reset readings, Auth0's tiers, other applications spending the bucket, outages, a rotated
secret, revoked tokens, changed scopes, organizations on /oauth/token, the worker's own grant.

Tests that change the tenant (secrets, scopes, signing key) run on an emulator of their own,
so that no shared emulator keeps the change."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from click.testing import CliRunner

from grant_worker.emulator import cli as emulator_cli
from grant_worker.emulator.config import EmulatorConfig
from grant_worker.emulator.ratelimit import TIERS, TokenBucket
from grant_worker.emulator.testing import RunningEmulator, running_emulator
from tests.emulator.helpers import Api, fetch_token

API = "https://api.example.com/"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def own() -> Iterator[RunningEmulator]:
    with running_emulator() as emu:
        yield emu


def token_response(
    emu: RunningEmulator, secret: str | None = None, **extra: str
) -> requests.Response:
    return requests.post(
        f"{emu.base_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": secret or emu.client_secret,
            "audience": emu.management_audience,
            **extra,
        },
        timeout=10,
    )


# -- reset semantics (pure) --------------------------------------------------------------------


def test_full_reset_semantics_name_the_second_the_bucket_is_full_again() -> None:
    clock = Clock()
    bucket = TokenBucket(2, 10, monotonic=clock, wall=clock, reset_semantics="full")
    for _ in range(4):
        decision = bucket.take()
    # 6 left, 4 missing at 2/s: full in 2 s
    assert (decision.remaining, decision.reset_epoch_s) == (6, 1002)


def test_next_reset_semantics_name_now_while_tokens_remain_and_the_next_token_after() -> None:
    clock = Clock()
    bucket = TokenBucket(2, 2, monotonic=clock, wall=clock, reset_semantics="next")
    assert bucket.take().reset_epoch_s == 1000
    refused = [bucket.take(), bucket.take()][-1]
    assert not refused.allowed
    assert refused.reset_epoch_s == 1001  # one token in 0.5 s, rounded up


def test_the_tiers_are_auth0s_published_limits() -> None:
    assert TIERS["free"] == (2.0, 10)
    assert TIERS["self-service"] == (16.0, 50)
    assert TIERS["enterprise"] == (50.0, 50)


def test_the_cli_starts_with_a_tier_limit_when_no_rate_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, object] = {}

    def fake_serve(state: object, *args: object, **kwargs: object) -> None:
        seen["rate_limit"] = state.rate_limit  # type: ignore[attr-defined]
        seen["background"] = state.background_rps  # type: ignore[attr-defined]

    monkeypatch.setattr(emulator_cli, "serve_forever", fake_serve)
    runner = CliRunner()
    result = runner.invoke(emulator_cli.emulator, ["--tier", "free", "--reset-semantics", "next"])
    assert result.exit_code == 0, result.output
    limit = seen["rate_limit"]
    assert (limit.rate_per_s, limit.burst, limit.reset_semantics) == (2.0, 10, "next")  # type: ignore[attr-defined]
    runner.invoke(emulator_cli.emulator, ["--background-rps", "8"])
    assert seen["background"] == 8.0


# -- over HTTP --------------------------------------------------------------------------------


def test_other_applications_spend_the_bucket_at_their_rate(emu: RunningEmulator) -> None:
    emu.admin.set_rate_limit(20, 20)
    emu.admin.set_background(10)
    time.sleep(1.0)
    emu.admin.set_background(0)
    stats = emu.admin.stats()
    assert 7 <= stats["background_calls"] <= 13
    assert stats["background_rate_limited"] == 0


def test_an_outage_answers_503_to_every_call_until_it_ends(emu: RunningEmulator, api: Api) -> None:
    emu.admin.start_outage(30, "error")
    assert api.list().status_code == 503
    assert token_response(emu).status_code == 503
    emu.admin.end_outage()
    assert api.list().status_code == 200
    assert emu.admin.stats()["outage_replies"] == 2


def test_an_outage_can_drop_connections(emu: RunningEmulator, api: Api) -> None:
    emu.admin.start_outage(30, "drop")
    with pytest.raises(requests.ConnectionError):
        api.list()
    emu.admin.end_outage()


def test_an_outage_can_hang_replies_until_it_ends(emu: RunningEmulator, api: Api) -> None:
    emu.admin.start_outage(0.5, "hang")
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        api.list()
    assert time.monotonic() - started >= 0.4


def test_a_rotated_secret_refuses_the_old_one_but_issued_tokens_stay_valid(
    own: RunningEmulator,
) -> None:
    issued = Api(own, fetch_token(own))
    own.admin.rotate_secret("rotated-secret")
    refused = token_response(own)
    assert refused.status_code == 401
    assert refused.json()["error"] == "access_denied"
    assert issued.list().status_code == 200
    assert token_response(own, secret="rotated-secret").status_code == 200


def test_revoked_tokens_are_refused_with_401(own: RunningEmulator) -> None:
    issued = Api(own, fetch_token(own))
    own.admin.revoke_tokens()
    assert issued.list().status_code == 401
    assert Api(own, fetch_token(own)).list().status_code == 200


def test_the_workers_granted_scopes_can_be_changed(own: RunningEmulator) -> None:
    own.admin.set_worker_scopes(["read:client_grants"])
    response = token_response(own)
    assert response.json()["scope"] == "read:client_grants"
    api = Api(own, response.json()["access_token"])
    refused = api.create({"client_id": "svc-00001", "audience": API})
    assert refused.status_code == 403
    assert refused.json()["errorCode"] == "insufficient_scope"


def test_the_workers_own_grant_is_listed_with_its_scopes(api: Api, emu: RunningEmulator) -> None:
    listed = api.list(client_id=emu.client_id).json()
    assert [g["audience"] for g in listed] == [emu.management_audience]
    assert "create:client_grants" in listed[0]["scope"]


def test_organization_usage_deny_and_require_on_the_token_endpoint() -> None:
    seed = {
        "worker_client_id": "grant-worker",
        "management_api": {"name": "M", "scopes": ["create:client_grants"]},
        "resource_servers": [{"identifier": API, "name": "Example", "scopes": ["read:data"]}],
        "clients": [
            {
                "client_id": "grant-worker",
                "client_secret": "s",
                "management_scopes": ["create:client_grants"],
            },
            {"client_id": "m2m-deny", "client_secret": "d"},
            {"client_id": "m2m-require", "client_secret": "r"},
        ],
        "grants": [
            {"client_id": "m2m-deny", "audience": API, "scope": ["read:data"]},
            {
                "client_id": "m2m-require",
                "audience": API,
                "scope": ["read:data"],
                "organization_usage": "require",
            },
        ],
    }
    config = EmulatorConfig.model_validate({"seed": seed})
    with running_emulator(config) as emu:

        def token(client: str, secret: str, **extra: str) -> int:
            form = {"grant_type": "client_credentials", "client_id": client}
            form |= {"client_secret": secret, "audience": API, **extra}
            return requests.post(f"{emu.base_url}/oauth/token", data=form, timeout=10).status_code

        assert token("m2m-deny", "d") == 200
        assert token("m2m-deny", "d", organization="org_1") == 403
        assert token("m2m-require", "r") == 403
        assert token("m2m-require", "r", organization="org_1") == 200
