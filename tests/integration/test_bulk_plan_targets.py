"""`grants bulk --plan` checks each audience and client of the file once, against the
emulator over HTTP: rows the tenant would refuse are `fail` with the run's error code; a token
that may not read resource servers or clients leaves those checks `unchecked`, never failing
the plan. Real Redis, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from grant_worker.config.settings import Settings
from grant_worker.worker.cli.main import cli
from grant_worker.worker.testing import settings_env
from tests.integration.conftest import next_client_id

API = "https://api.example.com/"
NO_API = "https://nowhere.example.com/"


def plan(settings: Settings, rows: list[dict[str, Any]], tmp_path: Path, **env: str) -> Result:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return CliRunner().invoke(
        cli, ["bulk", str(path), "--plan"], env={**settings_env(settings), **env}
    )


def gets(emulator: Any, route: str) -> int:
    return int(emulator.admin.stats()["requests_by_route"].get(f"GET {route}", 0))


def test_rows_the_tenant_would_refuse_are_planned_to_fail_with_the_runs_code(
    settings: Settings, emulator: Any, tmp_path: Path
) -> None:
    fine, other = next_client_id(), next_client_id()
    rows = [
        {"grant": {"client_id": fine, "audience": API}},
        {"grant": {"client_id": fine, "audience": NO_API}},
        {"grant": {"client_id": "nobody-here", "audience": API}},
        {"grant": {"client_id": "app-express", "audience": API}},
        {"grant": {"client_id": "app-partner-portal", "audience": settings.management_audience}},
        {"grant": {"client_id": other, "audience": NO_API}},
        {"grant": {"default_for": "third_party_clients", "audience": API}},
    ]
    result = plan(settings, rows, tmp_path)
    assert result.exit_code == 1, result.output
    *planned, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["line"], p["action"], p.get("reason")) for p in planned] == [
        (1, "create", None),
        (2, "fail", "not_found"),
        (3, "fail", "not_found"),
        (4, "fail", "bad_request"),
        (5, "fail", "bad_request"),
        (6, "fail", "not_found"),
        (7, "create", None),
    ]
    assert NO_API in planned[1]["problems"][0]
    assert "nobody-here" in planned[2]["problems"][0]
    assert all("unchecked" not in p for p in planned)
    assert (summary["fail"], summary["would_fail"], summary["create"]) == (5, 5, 2)
    assert summary["unchecked"] == {"audience": 0, "client": 0}
    # Each distinct audience (3) and client (5) read once.
    assert gets(emulator, "/api/v2/resource-servers/{id}") == 3
    assert gets(emulator, "/api/v2/clients/{id}") == 5


def test_a_token_that_cannot_read_them_leaves_the_checks_unchecked(
    settings: Settings, emulator: Any, tmp_path: Path
) -> None:
    # grant-reader's token holds read:client_grants only: grants can be listed, nothing else.
    reader = {"AUTH0_CLIENT_ID": "grant-reader", "AUTH0_CLIENT_SECRET": "reader-secret"}
    rows = [
        {"grant": {"client_id": next_client_id(), "audience": NO_API}},
        {"grant": {"client_id": "nobody-here", "audience": API}},
        {"grant": {"default_for": "third_party_clients", "audience": API}},
    ]
    result = plan(settings, rows, tmp_path, **reader)
    assert result.exit_code == 0, result.output
    *planned, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["action"], p.get("unchecked")) for p in planned] == [
        ("create", ["audience", "client"]),
        ("create", ["audience", "client"]),
        ("create", ["audience"]),
    ]
    assert summary["unchecked"] == {"audience": 3, "client": 2}
    assert summary["fail"] == 0
    assert "token lacks read:resource_servers" in result.stderr
    assert "token lacks read:clients" in result.stderr
    # Refused once, then not asked again.
    assert gets(emulator, "/api/v2/resource-servers/{id}") == 1
    assert gets(emulator, "/api/v2/clients/{id}") == 1


def sync_plan(
    settings: Settings, audience: str, rows: list[dict[str, Any]], tmp_path: Path
) -> Result:
    path = tmp_path / "wanted.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return CliRunner().invoke(
        cli, ["sync", str(path), "--audience", audience, "--plan"], env=settings_env(settings)
    )


def test_a_sync_plan_says_which_creates_the_tenant_would_refuse_and_exits_1(
    settings: Settings, emulator: Any, tmp_path: Path
) -> None:
    servers, clients = (
        gets(emulator, f"/api/v2/{r}/{{id}}") for r in ("resource-servers", "clients")
    )
    known = next_client_id()
    rows = [
        {"grant": {"client_id": known, "audience": API}},
        {"grant": {"client_id": "nobody-here", "audience": API}},
    ]
    result = sync_plan(settings, API, rows, tmp_path)
    assert result.exit_code == 1, result.output
    *planned, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["action"], p["client_id"]) for p in planned] == [
        ("create", known), ("create", "nobody-here")]  # fmt: skip
    assert "reason" not in planned[0]
    assert planned[1]["reason"].startswith("would fail (not_found)")
    assert summary["create"] == 2
    assert "line 2: the create would fail (not_found)" in result.stderr
    # The one audience once, each create's client once.
    assert gets(emulator, "/api/v2/resource-servers/{id}") - servers == 1
    assert gets(emulator, "/api/v2/clients/{id}") - clients == 2

    missing = sync_plan(settings, NO_API, [{"grant": {"client_id": known, "audience": NO_API}}],
                        tmp_path)  # fmt: skip
    assert missing.exit_code == 1, missing.output
    (create, _summary) = [json.loads(line) for line in missing.stdout.splitlines()]
    assert NO_API in create["reason"]
