"""The /__emulator/ admin API through EmulatorAdmin."""

from __future__ import annotations

import pytest
import requests

from grant_worker.emulator.testing import AdminError, RunningEmulator, running_emulator
from tests.emulator.helpers import Api, fetch_token

API = "https://api.example.com/"


def test_stats_count_requests_by_status_and_route(emu: RunningEmulator, api: Api) -> None:
    api.create({"client_id": "svc-00001", "audience": API})
    api.create({"client_id": "svc-00001", "audience": API})
    api.get("cgr_0000000000000000")
    stats = emu.admin.stats()
    assert stats["requests_total"] == 3
    assert stats["requests_by_status"] == {"201": 1, "409": 1, "404": 1}
    assert stats["requests_by_route"] == {
        "POST /api/v2/client-grants": 2,
        "GET /api/v2/client-grants/{id}": 1,
    }
    assert stats["grants"] == 1


def test_posts_are_counted_per_grant_key_even_when_refused(emu: RunningEmulator, api: Api) -> None:
    emu.admin.set_rate_limit(0.001, 1)
    api.create({"client_id": "svc-00001", "audience": API, "subject_type": "user"})
    api.create({"client_id": "svc-00001", "audience": API, "subject_type": "user"})
    api.create({"default_for": "third_party_clients", "audience": API})
    assert emu.admin.stats()["posts_by_grant_key"] == {
        f"svc-00001|{API}|user": 2,
        f"default_for:third_party_clients|{API}|client": 1,
    }


def test_grants_lists_every_stored_grant(emu: RunningEmulator, api: Api) -> None:
    created = api.create({"client_id": "svc-00001", "audience": API}).json()
    assert emu.admin.grants() == [created]


def test_reset_drops_grants_and_counters_and_restores_settings(
    emu: RunningEmulator, api: Api
) -> None:
    api.create({"client_id": "svc-00001", "audience": API})
    emu.admin.set_faults(latency_ms=5)
    emu.admin.set_rate_limit(100, 100)
    emu.admin.set_token_lifetime(5)
    emu.admin.reset()
    assert emu.admin.grants() == []
    assert emu.admin.stats()["requests_total"] == 0
    settings = emu.admin.settings()
    assert settings["faults"]["latency_ms"] == 0
    assert settings["rate_limit"]["rate_per_s"] is None
    assert settings["token_lifetime_s"] == 86400


def test_tokens_issued_before_a_reset_still_work(emu: RunningEmulator, api: Api) -> None:
    emu.admin.reset()
    assert api.list().status_code == 200


def test_set_faults_refuses_an_unknown_setting_and_keeps_the_old_ones(
    emu: RunningEmulator,
) -> None:
    emu.admin.set_faults(latency_ms=3)
    with pytest.raises(AdminError, match="invalid settings"):
        emu.admin.set_faults(latency_ms=4, eror_rate=0.1)
    assert emu.admin.settings()["faults"]["latency_ms"] == 3


def test_set_faults_refuses_rates_over_one(emu: RunningEmulator) -> None:
    with pytest.raises(AdminError):
        emu.admin.set_faults(error_rate=0.7, drop_rate=0.7)


def test_added_clients_can_hold_grants(emu: RunningEmulator, api: Api) -> None:
    emu.admin.add_clients([{"client_id": "new-app", "app_type": "spa"}])
    assert api.create({"client_id": "new-app", "audience": API}).status_code == 201


def test_added_clients_can_get_tokens(emu: RunningEmulator) -> None:
    emu.admin.add_clients(
        [{"client_id": "ops", "client_secret": "s3", "management_scopes": ["read:client_grants"]}]
    )
    assert Api(emu, fetch_token(emu, "ops", "s3")).list().status_code == 200


def test_added_resource_servers_can_be_granted(emu: RunningEmulator, api: Api) -> None:
    emu.admin.add_resource_servers([{"identifier": "urn:inventory", "scopes": ["read:stock"]}])
    assert api.create({"client_id": "svc-00001", "audience": "urn:inventory"}).status_code == 201


def test_an_invalid_client_is_refused(emu: RunningEmulator) -> None:
    with pytest.raises(AdminError):
        emu.admin.add_clients([{"client_id": ""}])


SOLO_SEED = {
    "clients": [
        {
            "client_id": "grant-worker",
            "client_secret": "emulator-secret",
            "management_scopes": ["read:client_grants", "create:client_grants"],
        },
        {"client_id": "solo"},
    ],
    "resource_servers": [{"identifier": "urn:solo"}],
    "grants": [{"id": "cgr_SeededSeededSe1", "client_id": "solo", "audience": "urn:solo"}],
}


def test_reseed_replaces_the_tenant_and_creates_its_grants() -> None:
    with running_emulator() as emu:
        emu.admin.reseed(SOLO_SEED)
        assert [g["id"] for g in emu.admin.grants()] == ["cgr_SeededSeededSe1"]
        api = Api(emu, fetch_token(emu))
        assert api.create({"client_id": "svc-00001", "audience": "urn:solo"}).status_code == 404


def test_reset_keeps_the_reseeded_tenant_and_recreates_its_grants() -> None:
    with running_emulator() as emu:
        emu.admin.reseed(SOLO_SEED)
        api = Api(emu, fetch_token(emu))
        grant = api.get("cgr_SeededSeededSe1").json()
        api.delete(grant["id"])
        emu.admin.reset()
        assert emu.admin.grants() == [grant]


def test_a_seed_with_a_rule_breaking_grant_is_refused_and_changes_nothing(
    emu: RunningEmulator, api: Api
) -> None:
    bad = {
        "clients": [{"client_id": "x", "app_type": "express_configuration"}],
        "resource_servers": [{"identifier": "urn:x"}],
        "grants": [{"client_id": "x", "audience": "urn:x"}],
    }
    with pytest.raises(AdminError, match="express_configuration"):
        emu.admin.reseed(bad)
    assert api.create({"client_id": "svc-00001", "audience": API}).status_code == 201


def test_the_admin_api_answers_json_400_to_a_non_json_body(emu: RunningEmulator) -> None:
    response = requests.post(f"{emu.base_url}/__emulator/faults", data=b"{", timeout=5)
    assert (response.status_code, response.json()["error"]) == (400, "the body must be JSON")
