"""The seed format and the tenant shipped by default (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from grant_worker.emulator.seed import (
    CLIENT_GRANTS_SCOPES,
    ClientBlock,
    default_seed,
    load_seed,
    seed_from_dict,
)


def test_the_default_worker_is_grant_worker_with_the_client_grants_and_read_scopes() -> None:
    worker = default_seed().worker_client()
    assert worker is not None
    assert (worker.client_id, worker.client_secret) == ("grant-worker", "emulator-secret")
    assert set(worker.management_scopes) == {
        *CLIENT_GRANTS_SCOPES,
        "read:resource_servers",
        "read:clients",
    }


def test_the_default_tenant_has_the_three_demo_apis() -> None:
    identifiers = {r.identifier for r in default_seed().resource_servers}
    assert identifiers == {
        "https://api.example.com/",
        "https://billing.example.com/",
        "https://reports.example.com/",
    }


def test_the_default_tenant_has_demo_express_and_third_party_clients() -> None:
    clients = {c.client_id: c for c in default_seed().all_clients()}
    assert {"app-acme-billing", "app-globex-reports"} <= clients.keys()
    assert clients["app-express"].app_type == "express_configuration"
    assert any(not c.is_first_party for c in clients.values())


def test_the_default_tenant_has_5000_predictable_service_clients() -> None:
    ids = [c.client_id for c in default_seed().all_clients() if c.client_id.startswith("svc-")]
    assert (len(ids), ids[0], ids[-1]) == (5000, "svc-00000", "svc-04999")


def test_a_client_block_expands_prefix_and_zero_padded_numbers() -> None:
    block = ClientBlock(prefix="app-", count=3, width=3, start=8)
    assert [c.client_id for c in block.expand()] == ["app-008", "app-009", "app-010"]


def test_a_yaml_seed_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "tenant.yaml"
    path.write_text("clients:\n  - {client_id: a, client_secret: s, management_scopes: [x]}\n")
    assert load_seed(path).worker_client().client_id == "a"  # type: ignore[union-attr]


def test_a_json_seed_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps({"resource_servers": [{"identifier": "https://x/"}]}))
    assert load_seed(path).resource_servers[0].identifier == "https://x/"


def test_an_unknown_seed_key_is_refused() -> None:
    with pytest.raises(ValidationError):
        seed_from_dict({"client": []})


def test_duplicate_client_ids_across_blocks_are_refused() -> None:
    with pytest.raises(ValidationError, match="duplicate client_id"):
        seed_from_dict(
            {
                "clients": [{"client_id": "s-1"}],
                "client_blocks": [{"prefix": "s-", "count": 2, "width": 1}],
            }
        )


def test_a_worker_client_without_a_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="worker_client_id"):
        seed_from_dict({"worker_client_id": "a", "clients": [{"client_id": "a"}]})


def test_a_seed_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n")
    with pytest.raises(ValueError, match="mapping"):
        load_seed(path)


def test_m2m_clients_may_use_client_credentials_by_default_and_others_may_not() -> None:
    clients = {c.client_id: c for c in default_seed().clients}
    assert "client_credentials" in clients["app-acme-billing"].allowed_grant_types
    assert "client_credentials" not in clients["app-initech-portal"].allowed_grant_types
