"""`grants demo`: the emulator, a real worker process and example requests, on one machine.

Everything runs on embedded defaults: the emulator's default tenant, the Redis at REDIS_URL,
and a queue and key prefix of the demo's own, so a demo never touches real work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from grant_worker.config.settings import Settings
from grant_worker.tasks.connections import delete_deployment, make_redis
from grant_worker.tasks.messages.models import Outcome
from grant_worker.worker.cli.base import load_settings
from grant_worker.worker.client.grant_client import GrantClient, WaitTimeout

WAIT_S = 60.0


@dataclass(frozen=True)
class Example:
    title: str
    request: dict[str, Any]
    expected: str  # status, or status:code
    via_intake: bool = False  # sent raw on the intake stream, skipping producer validation


def _grant(client_id: str, audience: str, *scopes: str) -> dict[str, Any]:
    return {"client_id": client_id, "audience": audience, "scope": list(scopes)}


FIRST_ROUND = [
    Example(
        "new grant",
        {"grant": _grant("app-acme-billing", "https://billing.example.com/", "read:invoices")},
        "created",
    ),
    Example(
        "new grant",
        {"grant": _grant("app-globex-reports", "https://reports.example.com/", "read:reports")},
        "created",
    ),
    Example(
        "default grant for third-party apps",
        {"grant": {"default_for": "third_party_clients", "audience": "https://api.example.com/"}},
        "created",
    ),
    Example(
        "unknown audience",
        {"grant": _grant("app-acme-billing", "https://nowhere.example.com/", "read:x")},
        "failed:not_found",
    ),
    Example(
        "express-configuration client",
        {"grant": _grant("app-express", "https://api.example.com/", "read:x")},
        "failed:bad_request",
    ),
    Example(
        "invalid: both client_id and default_for, raw on the intake stream",
        {
            "grant": {
                "client_id": "app-acme-billing",
                "default_for": "third_party_clients",
                "audience": "https://api.example.com/",
            }
        },
        "rejected:invalid_request",
        via_intake=True,
    ),
]
SECOND_ROUND = [
    Example(
        "duplicate, on_conflict keep",
        {
            "grant": _grant(
                "app-acme-billing",
                "https://billing.example.com/",
                "read:invoices",
                "write:invoices",
            )
        },
        "exists",
    ),
    Example(
        "duplicate, on_conflict merge",
        {
            "grant": _grant("app-globex-reports", "https://reports.example.com/", "write:reports"),
            "on_conflict": "merge",
        },
        "updated",
    ),
]


def run_demo(settings: Settings, *, keep: bool = False) -> int:
    """Run the demo; returns 0 when every example ended as expected, else 1."""
    from grant_worker.emulator.testing import running_emulator

    console = Console()
    run_id = uuid.uuid4().hex[:8]
    with running_emulator() as emulator:
        demo_settings = Settings(
            redis_url=settings.redis_url,
            auth0_domain=emulator.base_url,
            auth0_client_id=emulator.client_id,
            auth0_client_secret=emulator.client_secret,
            grants_key_prefix=f"demo-{run_id}:",
            grants_queue=f"demo-{run_id}",
            grants_retry_budget_s=10,
            grants_concurrency=4,
        )
        console.print(f"emulator at {emulator.base_url}; queue {demo_settings.grants_queue}")
        with tempfile.NamedTemporaryFile(prefix="grants-demo-", suffix=".log", delete=False) as log:
            worker = _start_worker(demo_settings, log.name)
        console.print(f"worker pid {worker.pid}, log {log.name}")
        try:
            with GrantClient(demo_settings) as client:
                rows = _round(client, FIRST_ROUND, run_id) + _round(client, SECOND_ROUND, run_id)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
            if not keep:
                _clean(demo_settings)
    console.print(_table(rows))
    ok = all(_matches(outcome, example.expected) for example, outcome in rows)
    console.print("all outcomes as expected" if ok else "[red]some outcomes were not as expected")
    return 0 if ok else 1


def _start_worker(settings: Settings, log_path: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url.get_secret_value(),
        "AUTH0_DOMAIN": settings.auth0_domain,
        "AUTH0_CLIENT_ID": settings.auth0_client_id or "",
        "AUTH0_CLIENT_SECRET": settings.auth0_client_secret.get_secret_value()
        if settings.auth0_client_secret
        else "",
        "GRANTS_KEY_PREFIX": settings.grants_key_prefix,
        "GRANTS_QUEUE": settings.grants_queue,
        "GRANTS_RETRY_BUDGET_S": str(settings.grants_retry_budget_s),
        "GRANTS_CONCURRENCY": str(settings.grants_concurrency),
    }
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "grant_worker.worker", "worker", "--loglevel", "INFO"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _round(
    client: GrantClient, examples: list[Example], run_id: str
) -> list[tuple[Example, Outcome | None]]:
    ids = []
    for index, example in enumerate(examples):
        request = {**example.request, "request_id": f"demo-{run_id}-{example.expected}-{index}"}
        request_id = request["request_id"].replace(":", ".")
        request["request_id"] = request_id
        if example.via_intake:
            client.redis.xadd(client.keys.intake, {"request": json.dumps(request)})
        else:
            client.submit(request)
        ids.append(request_id)
    rows: list[tuple[Example, Outcome | None]] = []
    for example, request_id in zip(examples, ids, strict=True):
        try:
            rows.append((example, client.wait(request_id, timeout_s=WAIT_S)))
        except WaitTimeout:
            rows.append((example, None))
    return rows


def _matches(outcome: Outcome | None, expected: str) -> bool:
    if outcome is None:
        return False
    status, _, code = expected.partition(":")
    return outcome.status == status and (
        not code or (outcome.error is not None and outcome.error.code == code)
    )


def _table(rows: list[tuple[Example, Outcome | None]]) -> Table:
    table = Table(title="grant-worker demo")
    for column in ("request", "status", "detail", "attempts"):
        table.add_column(column)
    for example, outcome in rows:
        if outcome is None:
            table.add_row(example.title, "[red]no outcome", "", "")
            continue
        if outcome.error:
            detail = f"{outcome.error.code}: {outcome.error.message}"
        else:
            detail = str((outcome.grant or {}).get("id", ""))
            if outcome.differences:
                detail += f" differs: {json.dumps(outcome.differences)}"
        table.add_row(example.title, outcome.status, detail, str(outcome.attempts))
    return table


def _clean(settings: Settings) -> None:
    client = make_redis(settings)
    delete_deployment(client, settings)
    client.close()


@click.command()
@click.option("--keep", is_flag=True, help="Keep the demo's streams in Redis afterwards.")
def demo(keep: bool) -> None:
    """The whole pipeline on one machine: emulator, a worker, example requests."""
    sys.exit(run_demo(load_settings(), keep=keep))
