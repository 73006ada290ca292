"""`grants sync` interrupted and resumed, and the calls it spends, with real worker processes
against the project's emulator over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import next_client_id
from tests.integration.test_sync import API, grants, seed, tenant

ROUTES = ("POST /api/v2/client-grants", "PATCH /api/v2/client-grants/{id}",
          "DELETE /api/v2/client-grants/{id}", "GET /api/v2/client-grants/{id}")  # fmt: skip


def calls(emulator: Any) -> dict[str, int]:
    by_route = emulator.admin.stats()["requests_by_route"]
    return {route: by_route.get(route, 0) for route in ROUTES}


def spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {route: after[route] - before[route] for route in ROUTES}


def desired(path: Path, rows: list[tuple[str, list[str]]]) -> None:
    path.write_text("".join(json.dumps({"grant": {"client_id": c, "audience": API, "scope": s}})
                            + "\n" for c, s in rows))  # fmt: skip


def test_a_sync_spends_one_call_per_create_update_and_revoke(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
    emulator: Any, tmp_path: Path,
) -> None:  # fmt: skip
    start_worker(settings)
    updated, revoked, created = next_client_id(), next_client_id(), next_client_id()
    seed(client, [(updated, API, ["read:data"]), (revoked, API, ["read:data"])])
    file = tmp_path / "wanted.jsonl"
    desired(file, [(updated, ["write:data"]), (created, ["read:data"])])
    # Only this test's grants on API: other tests' leftovers would be revoked (and counted).
    for grant in emulator.admin.grants():
        if grant["audience"] == API and grant["client_id"] not in (updated, revoked):
            file.write_text(file.read_text() + json.dumps({"grant": {
                "client_id": grant["client_id"], "audience": API,
                "scope": grant.get("scope", [])}}) + "\n")  # fmt: skip

    before = calls(emulator)
    run = grants(settings, "sync", str(file), "--audience", API, "--prune", "--wait")
    assert run.exit_code == 0, run.output
    # No POST/409/lookup before the PATCH, no lookup before the DELETE: the listing was it.
    assert spent(before, calls(emulator)) == dict(zip(ROUTES, (1, 1, 1, 0), strict=True))
    held = tenant(emulator, API)
    assert (held[updated], held[created], revoked in held) == (["write:data"], ["read:data"], False)


def sync_process(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "grant_worker.worker", "sync", *args],
        env={**os.environ, **settings_env(settings)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_an_interrupted_sync_prints_its_summary_and_the_rerun_sends_nothing_twice(
    settings_factory: Callable[..., Settings], start_worker: Callable[..., WorkerProcess],
    emulator: Any, tmp_path: Path,
) -> None:  # fmt: skip
    # A slow fleet (4 calls/s), so that the interrupt comes with much of the batch still to do.
    settings = settings_factory(grants_rate_limit=4, grants_rate_burst=1)
    with GrantClient(settings) as client:
        worker = start_worker(settings)
        olds = [next_client_id() for _ in range(16)]
        news = [next_client_id() for _ in range(8)]
        seed(client, [(c, API, ["read:data"]) for c in olds])
    others = [(g["client_id"], g.get("scope", [])) for g in emulator.admin.grants()
              if g["audience"] == API and g["client_id"] not in olds]  # fmt: skip
    # 8 updates, 8 revokes (olds[8:] left out), 8 creates; other tests' grants unchanged.
    file = tmp_path / "wanted.jsonl"
    desired(file, [(c, ["write:data"]) for c in olds[:8]]
            + [(c, ["read:data"]) for c in news] + others)  # fmt: skip
    command = (str(file), "--audience", API, "--prune", "--yes", "--wait")
    posts_before = emulator.admin.stats()["posts_by_grant_key"]
    before = calls(emulator)

    first = sync_process(settings, *command)
    deadline = time.monotonic() + 60
    while sum(spent(before, calls(emulator)).values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert "interrupted; resume with: grants sync" in stderr
    statuses = json.loads(stdout.splitlines()[-1])["statuses"]
    assert statuses.get("pending", 0) > 0, statuses
    assert sum(statuses.get(s, 0) for s in ("created", "updated", "revoked")) > 0, statuses

    # The fleet stops too (its unfinished messages go back to the queue), so that the rerun
    # finds both finished and still queued requests of the first run.
    worker.stop(timeout_s=30)
    rerun = sync_process(settings, *command)
    start_worker(settings)
    _out, rerun_err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, rerun_err
    assert "still queued from an earlier run" in rerun_err
    held = tenant(emulator, API)
    assert all(held[c] == ["write:data"] for c in olds[:8])
    assert all(held[c] == ["read:data"] for c in news)
    assert not any(c in held for c in olds[8:])
    # Each write went out once over both runs.
    assert spent(before, calls(emulator)) == dict(zip(ROUTES, (8, 8, 8, 0), strict=True))
    posts_after = emulator.admin.stats()["posts_by_grant_key"]
    for c in news:
        key = f"{c}|{API}|client"
        assert posts_after.get(key, 0) - posts_before.get(key, 0) == 1


def test_bulk_revoke_rows_by_id_and_by_key_are_planned_then_end_revoked_or_absent(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
    emulator: Any, tmp_path: Path,
) -> None:  # fmt: skip
    by_id, by_key, never = next_client_id(), next_client_id(), next_client_id()
    start_worker(settings)
    seed(client, [(by_id, API, ["read:data"]), (by_key, API, ["read:data"])])
    grant_id = next(g["id"] for g in emulator.admin.grants() if g["client_id"] == by_id)
    path = tmp_path / "revokes.csv"
    path.write_text("action,grant_id,client_id,audience\n"
                    f"revoke,{grant_id},,\n"
                    "revoke,cgr_neverexisted0001,,\n"
                    f"revoke,,{by_key},{API}\n"
                    f"revoke,,{never},{API}\n")  # fmt: skip

    plan = grants(settings, "bulk", str(path), "--plan")
    assert plan.exit_code == 0, plan.output
    *planned, _summary = [json.loads(line) for line in plan.stdout.splitlines()]
    assert [(p["line"], p["action"]) for p in planned] == [
        (2, "revoke"), (3, "absent"), (4, "revoke"), (5, "absent")]  # fmt: skip
    assert {by_id, by_key} <= set(tenant(emulator, API))  # the plan wrote nothing

    report = tmp_path / "report.jsonl"
    run = grants(settings, "bulk", str(path), "--wait", "--report", str(report))
    assert run.exit_code == 0, run.output
    ended = [(e["line"], e["status"]) for e in map(json.loads, report.read_text().splitlines())]
    assert ended == [(2, "revoked"), (3, "absent"), (4, "revoked"), (5, "absent")]
    assert not {by_id, by_key} & set(tenant(emulator, API))
