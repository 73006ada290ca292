"""`grants sync` with real worker processes against the project's emulator over HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.worker.cli.main import cli
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import next_client_id

API = "https://api.example.com/"
OTHER = "https://billing.example.com/"
WAIT_S = 60.0


def grants(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=settings_env(settings))


def seed(client: GrantClient, rows: list[tuple[str, str, list[str]]]) -> None:
    ids = client.submit_many(
        [{"grant": {"client_id": c, "audience": a, "scope": s}} for c, a, s in rows]
    )
    assert all(o.status == "created" for o in client.wait_many(ids, timeout_s=WAIT_S))


def tenant(emulator: Any, audience: str) -> dict[str, list[str]]:
    return {
        g["client_id"]: sorted(g.get("scope", []))
        for g in emulator.admin.grants()
        if g["audience"] == audience
    }


def writes(emulator: Any) -> int:
    by_route = emulator.admin.stats()["requests_by_route"]
    return sum(
        n for route, n in by_route.items() if "/api/v2/" in route and not route.startswith("GET")
    )


def test_sync_with_prune_makes_the_audience_equal_the_file_and_a_rerun_writes_nothing(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
    emulator: Any, tmp_path: Path,
) -> None:  # fmt: skip
    start_worker(settings)
    same, differ, extra, elsewhere, new = (next_client_id() for _ in range(5))
    seed(client, [(same, API, ["read:data"]), (differ, API, ["read:data"]),
                  (extra, API, ["read:data"]), (elsewhere, OTHER, ["read:invoices"])])  # fmt: skip
    file = tmp_path / "wanted.jsonl"
    file.write_text("\n".join(json.dumps({"grant": g}) for g in [
        {"client_id": same, "audience": API, "scope": ["read:data"]},
        {"client_id": differ, "audience": API, "scope": ["read:data", "write:data"]},
        {"client_id": new, "audience": API, "scope": ["write:data"]},
    ]) + "\n")  # fmt: skip

    plan = grants(settings, "sync", str(file), "--audience", API, "--prune", "--plan")
    assert plan.exit_code == 0, plan.output
    *lines, summary = [json.loads(line) for line in plan.stdout.splitlines()]
    assert {k: summary[k] for k in ("create", "update", "revoke", "unchanged")} == {
        "create": 1, "update": 1, "revoke": 1, "unchanged": 1}  # fmt: skip
    assert {(line["action"], line["client_id"]) for line in lines} == {
        ("unchanged", same), ("update", differ), ("create", new), ("revoke", extra)}  # fmt: skip
    assert len(tenant(emulator, API)) == 3  # --plan wrote nothing

    report = tmp_path / "report.jsonl"
    run = grants(settings, "sync", str(file), "--audience", API, "--prune", "--yes", "--wait",
                 "--report", str(report))  # fmt: skip
    assert run.exit_code == 0, run.output
    batch_id = run.stderr.splitlines()[0].removeprefix("batch ")
    assert tenant(emulator, API) == {
        same: ["read:data"], differ: ["read:data", "write:data"], new: ["write:data"]}  # fmt: skip
    assert tenant(emulator, OTHER) == {elsewhere: ["read:invoices"]}
    statuses = {json.loads(line)["client_id"]: json.loads(line)["status"]
                for line in report.read_text().splitlines()}  # fmt: skip
    assert statuses == {same: "unchanged", differ: "updated", new: "created", extra: "revoked"}
    ledger = client.redis.hgetall(Keys(settings.grants_key_prefix).batch(batch_id))
    assert (ledger["created"], ledger["updated"], ledger["revoked"]) == ("1", "1", "1")
    status = grants(settings, "batch", "status", batch_id, "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["revoked"] == 1

    before = writes(emulator)
    rerun = grants(settings, "sync", str(file), "--audience", API, "--prune", "--yes", "--wait")
    assert rerun.exit_code == 0, rerun.output
    assert writes(emulator) == before


def test_sync_refuses_more_revokes_than_max_revoke_without_yes_and_enqueues_nothing(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
    emulator: Any, tmp_path: Path,
) -> None:  # fmt: skip
    start_worker(settings)
    keep, *others = (next_client_id() for _ in range(4))
    seed(client, [(c, API, ["read:data"]) for c in (keep, *others)])
    file = tmp_path / "wanted.csv"
    file.write_text(f"client_id,audience,scope\n{keep},{API},read:data\n")
    refused = grants(settings, "sync", str(file), "--audience", API, "--prune", "--max-revoke", "2")
    assert refused.exit_code == 2
    assert "revoke 3 grants" in refused.output
    assert client.redis.llen(settings.grants_queue) == 0
    assert len(tenant(emulator, API)) == 4
    allowed = grants(settings, "sync", str(file), "--audience", API, "--prune", "--max-revoke",
                     "3", "--wait")  # fmt: skip
    assert allowed.exit_code == 0, allowed.output
    assert tenant(emulator, API) == {keep: ["read:data"]}


def test_sync_keeps_protected_grants_and_says_so(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
    emulator: Any, tmp_path: Path,
) -> None:  # fmt: skip
    start_worker(settings)
    audience = settings.management_audience
    seed(client, [(settings.auth0_client_id or "", audience, ["read:client_grants"])])
    file = tmp_path / "empty.jsonl"
    file.write_text("")
    run = grants(settings, "sync", str(file), "--audience", audience, "--prune", "--wait")
    assert run.exit_code == 0, run.output
    assert "kept" in run.stderr and "own grant" in run.stderr
    assert json.loads(run.stdout.splitlines()[-1])["protected"] == 1
    assert tenant(emulator, audience) == {settings.auth0_client_id: ["read:client_grants"]}
