"""`grants status [--json]`: the fleet at a glance, from Redis alone.

Each part is read by a small reader function, so that the state other modules own is read by
their own code:

- queue depth and intake backlog: their lengths, read here;
- dead letters by code and the fleet's finishing rate: `tasks.outcomes.windows`;
- workers and their in-flight counts: the register and heartbeats, `tasks.fleet.read_beats`;
- the fleet's pace and what it learned of the tenant: `tasks.flow.pace.read_pace`;
- the breaker: `tasks.flow.breaker.read_breaker`;
- batches in progress: `tasks.outcomes.batches.list_batches`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import click
import redis
from rich.console import Console
from rich.table import Table

from grant_worker.config.settings import Settings
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.fleet import read_beats
from grant_worker.tasks.flow.breaker import read_breaker
from grant_worker.tasks.flow.pace import read_pace
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.outcomes.batches import list_batches
from grant_worker.tasks.outcomes.windows import dead_by_code, finished_per_s
from grant_worker.worker.cli.base import echo_json, load_settings, rich_safe

# Dead letters are counted by code over at most this many of the newest entries.
DEAD_SCAN_LIMIT = 10_000
RATE_WINDOW_S = 60
RATE_SAMPLE = 1000
# The most recently active batches looked at for "in progress".
BATCHES_SHOWN = 20


@dataclass
class WorkerSummary:
    """One live worker as `--json` shows it (from its heartbeat, `tasks.fleet.WorkerBeat`)."""

    hostname: str
    busy: int
    capacity: int
    idle_s: float | None
    stalled: bool
    age_s: float | None


@dataclass
class FleetStatus:
    queue: str
    queue_depth: int
    intake_pending: int
    workers: list[WorkerSummary]
    finished_per_s: float
    flow: dict[str, Any]
    breaker: dict[str, Any]
    dead_letters: int
    dead_by_code: dict[str, int]
    dead_counted: int
    batches: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def read_workers(client: redis.Redis, keys: Keys, now_s: float) -> list[WorkerSummary]:
    """The registered workers whose heartbeat has not expired, with what their last beat said."""
    return [
        WorkerSummary(
            hostname=beat.hostname,
            busy=beat.busy or 0,
            capacity=beat.capacity or 0,
            idle_s=beat.idle_s,
            stalled=beat.stalled,
            age_s=round(now_s - beat.at, 1) if beat.at is not None else None,
        )
        for beat in read_beats(client, keys)
        if beat.current
    ]


def flow_summary(client: redis.Redis, keys: Keys, settings: Settings) -> dict[str, Any]:
    """The fleet's pace: the setting, what it learned of the tenant, any 429 pause in force."""
    flow = read_pace(client, keys)
    server_s, _ = client.time()
    pause_until = flow.pause_until or 0.0
    return {
        "rate_limit": settings.grants_rate_limit,
        "learned_limit": flow.limit,
        "last_remaining": flow.remaining,
        "fleet_rate_per_s": round(flow.rate, 2) if flow.rate is not None else None,
        "paused_for_s": round(pause_until - float(server_s), 1) if pause_until > server_s else 0.0,
    }


def breaker_summary(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    breaker = read_breaker(client, keys)
    return {
        "state": breaker.state,
        "cause": breaker.cause,
        "since": breaker.since,
        "next_probe_at": breaker.next_probe_at,
        "message": breaker.message,
    }


def batches_in_progress(client: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    return [
        batch.as_dict()
        for batch in list_batches(client, keys, limit=BATCHES_SHOWN)
        if batch.pending > 0
    ]


def read_status(client: redis.Redis, settings: Settings) -> FleetStatus:
    keys = Keys(settings.grants_key_prefix)
    now_s = time.time()
    by_code, counted = dead_by_code(client, keys, DEAD_SCAN_LIMIT)
    status = FleetStatus(
        queue=settings.grants_queue,
        queue_depth=int(client.llen(settings.grants_queue)),
        intake_pending=int(client.xlen(keys.intake)),
        workers=read_workers(client, keys, now_s),
        finished_per_s=finished_per_s(
            client, keys, now_s, window_s=RATE_WINDOW_S, sample=RATE_SAMPLE
        ),
        flow=flow_summary(client, keys, settings),
        breaker=breaker_summary(client, keys),
        dead_letters=int(client.xlen(keys.dead)),
        dead_by_code=by_code,
        dead_counted=counted,
        batches=batches_in_progress(client, keys),
    )
    if status.dead_letters > counted:
        status.notes.append(f"dead letters by code: the newest {counted} counted")
    return status


def render(status: FleetStatus, console: Console) -> None:
    in_flight = sum(worker.busy for worker in status.workers)
    capacity = sum(worker.capacity for worker in status.workers)
    flow = status.flow
    setting = flow["rate_limit"]
    ceiling = "off" if setting == 0 else ("auto" if setting == "auto" else f"{setting}/s")
    learned = flow["learned_limit"]
    pace = flow["fleet_rate_per_s"]
    console.print(
        f"[bold]queue[/] {rich_safe(status.queue)}: {status.queue_depth} waiting, "
        f"{status.intake_pending} on the intake stream"
    )
    console.print(
        f"[bold]fleet[/] {len(status.workers)} workers, {in_flight}/{capacity} in flight, "
        f"{status.finished_per_s}/s finished (last {RATE_WINDOW_S} s); rate limit {ceiling}, "
        f"tenant limit {learned if learned is not None else 'not learned yet'}, "
        f"pace {f'{pace}/s' if pace is not None else 'n/a'}"
        + (f", [yellow]paused {flow['paused_for_s']} s[/]" if flow["paused_for_s"] else "")
    )
    breaker = status.breaker
    if breaker["state"] == "open":
        console.print(
            f"[bold]breaker[/] [red]open[/] ({rich_safe(breaker['cause'])}): "
            f"{rich_safe(breaker['message'] or '')}"
        )
    else:
        console.print("[bold]breaker[/] closed")
    if status.workers:
        table = Table("worker", "in flight", "capacity", "idle s", "beat age s", "stalled")
        for worker in status.workers:
            table.add_row(
                rich_safe(worker.hostname),
                str(worker.busy),
                str(worker.capacity),
                str(worker.idle_s),
                str(worker.age_s),
                "[red]yes[/]" if worker.stalled else "no",
            )
        console.print(table)
    else:
        console.print("[yellow]no worker has a live heartbeat[/]")
    codes = ", ".join(f"{rich_safe(code)} {n}" for code, n in status.dead_by_code.items()) or "none"
    console.print(f"[bold]dead letters[/] {status.dead_letters}: {codes}")
    console.print(f"[bold]batches in progress[/] {len(status.batches)}")
    for batch in status.batches:
        console.print(
            f"  {rich_safe(batch['batch_id'])}: {batch['finished']}/{batch['total']} finished, "
            f"{batch['queued']} queued, {batch['in_flight']} in flight"
        )
    for note in status.notes:
        console.print(f"[dim]{rich_safe(note)}[/]")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the screen.")
def status_command(as_json: bool) -> None:
    """The fleet at a glance: queue, workers, pace, breaker, dead letters, batches."""

    settings = load_settings()
    client = make_redis(settings)
    try:
        status = read_status(client, settings)
    finally:
        client.close()
    if as_json:
        echo_json(asdict(status))
    else:
        render(status, Console(file=sys.stdout, soft_wrap=True))
