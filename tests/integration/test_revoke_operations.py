"""Revokes through the operator's tools, like creates: dead letters and their replay, and
`grants results`. Real worker processes, the emulator over HTTP, the `grants` CLI in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from click.testing import CliRunner, Result

from grant_worker.config.settings import Settings
from grant_worker.worker.cli.main import cli
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import next_client_id

API = "https://api.example.com/"
WAIT_S = 30.0


def grants(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=settings_env(settings))


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def create(client: GrantClient, client_id: str) -> dict[str, Any]:
    request_id = client.submit({"grant": {"client_id": client_id, "audience": API}})
    outcome = client.wait(request_id, timeout_s=WAIT_S)
    assert outcome.status == "created", outcome
    assert outcome.grant is not None
    return outcome.grant


def grant_ids(emulator: Any) -> set[str]:
    return {g["id"] for g in emulator.admin.grants()}


def test_a_revoke_failed_by_the_tenant_is_dead_lettered_and_its_replay_ends_revoked(
    settings_factory: Callable[..., Settings], start_worker: Callable[..., WorkerProcess],
    emulator: Any,
) -> None:  # fmt: skip
    # A short budget so the 5xx replies exhaust it quickly. Each 503 to the DELETE is followed
    # by a lookup that the tenant answers, so the fleet never sees a sustained outage: the
    # breaker stays closed and the revoke ends `failed` instead of waiting on the queue.
    settings = settings_factory(grants_retry_budget_s=2.0)
    start_worker(settings)
    owner, bystander = next_client_id(), next_client_id()
    with GrantClient(settings) as client:
        target = create(client, owner)
        create(client, bystander)
        before = grant_ids(emulator)
        emulator.admin.set_faults(error_rate=1.0, error_status=503, fault_methods=["DELETE"])
        request_id = client.revoke(client_id=owner, audience=API, request_id=f"rv-dlq-{owner}")
        failed = client.wait(request_id, timeout_s=WAIT_S)
        assert failed.status == "failed", failed
        assert failed.error is not None and failed.error.code == "upstream_error"
        assert grant_ids(emulator) == before  # the DELETE was never carried out

        listed = [
            line for line in json_lines(grants(settings, "dlq", "list"))
            if line["request_id"] == request_id
        ]  # fmt: skip
        assert len(listed) == 1
        assert (listed[0]["status"], listed[0]["action"]) == ("failed", "revoke")
        shown = grants(settings, "dlq", "show", request_id)
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["request"] == {
            "action": "revoke",
            "request_id": request_id,
            "grant": {"client_id": owner, "audience": API},
        }

        emulator.admin.set_faults(error_rate=0.0, fault_methods=[])
        replayed = json_lines(grants(settings, "dlq", "replay", request_id))
        assert [(r["request_id"], r["action"]) for r in replayed] == [(request_id, "replayed")]
        outcome = client.wait(request_id, timeout_s=WAIT_S)

    assert outcome.status == "revoked", outcome
    assert outcome.grant is not None and outcome.grant["id"] == target["id"]
    # Only the named grant went; the bystander on the same audience stayed.
    assert grant_ids(emulator) == before - {target["id"]}
    assert grants(settings, "dlq", "show", request_id).exit_code == 2  # the letter was taken


def test_grants_results_lists_revoked_and_absent_outcomes_by_status(
    settings: Settings, start_worker: Callable[..., WorkerProcess], client: GrantClient,
) -> None:  # fmt: skip
    start_worker(settings)
    owner = next_client_id()
    grant = create(client, owner)
    revoked = client.revoke(client_id=owner, audience=API)
    absent = client.revoke(grant_id="cgr_neverexisted0001")
    list(client.wait_many([revoked, absent], timeout_s=WAIT_S))

    by_revoked = json_lines(grants(settings, "results", "--status", "revoked"))
    by_absent = json_lines(grants(settings, "results", "--status", "absent"))

    assert [(o["request_id"], o["grant"]["id"]) for o in by_revoked] == [(revoked, grant["id"])]
    assert [(o["request_id"], o["status"], o["grant"]) for o in by_absent] == [
        (absent, "absent", None)
    ]
