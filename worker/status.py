"""`grants status [--json]`: the fleet at a glance, from Redis alone.

Each part is read by a small reader function, so that the state other modules own is read by
their own code:

- queue depth, intake backlog, dead letters by code, the fleet's finishing rate: read here;
- workers and their in-flight counts: the heartbeats the watchdog writes (`Keys.heartbeat`);
- the rate governor: `read_flow_state` reads the governor's hash (pause, configured ceiling);
  the learned limit of issue 7 plugs in there;
- the breaker: `read_breaker` (issue 7 provides it; None here, shown as "not available");
- batches in progress: `list_batches` (issue 10 provides it; None here).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import click
import redis
from rich.console import Console
from rich.table import Table

from grant_worker.config.settings import Settings
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.keys import Keys

# Dead letters are counted by code over at most this many of the newest entries.
DEAD_SCAN_LIMIT = 10_000
RATE_WINDOW_S = 60
RATE_SAMPLE = 1000


@dataclass
class WorkerBeat:
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
    workers: list[WorkerBeat]
    finished_per_s: float
    flow: dict[str, Any]
    breaker: dict[str, Any] | None
    dead_letters: int
    dead_by_code: dict[str, int]
    dead_counted: int
    batches: list[dict[str, Any]] | None
    notes: list[str] = field(default_factory=list)


def read_workers(client: redis.Redis, keys: Keys, now_s: float) -> list[WorkerBeat]:
    """The workers whose heartbeat has not expired, with what their last beat said."""
    prefix = keys.heartbeat("")
    beats = []
    for key in sorted(client.scan_iter(f"{prefix}*", count=1000)):
        raw = client.get(key)
        if not raw:
            continue
        try:
            beat = json.loads(raw)
        except json.JSONDecodeError:
            continue
        at = beat.get("at")
        beats.append(
            WorkerBeat(
                hostname=str(key)[len(prefix) :],
                busy=int(beat.get("busy", 0)),
                capacity=int(beat.get("capacity", 0)),
                idle_s=beat.get("idle_s"),
                stalled=bool(beat.get("stalled", False)),
                age_s=round(now_s - float(at), 1) if isinstance(at, int | float) else None,
            )
        )
    return beats


def read_flow_state(client: redis.Redis, keys: Keys, settings: Settings) -> dict[str, Any]:
    """The fleet's pace: the configured ceiling and any pause in force (issue 7: learned limit)."""
    state = client.hgetall(keys.governor)
    server_s, server_us = client.time()
    now_us = int(server_s) * 1_000_000 + int(server_us)
    pause_us = int(float(state.get("pause", 0) or 0))
    return {
        "rate_limit_per_s": settings.grants_rate_limit or None,
        "burst": settings.grants_rate_burst,
        "paused_for_s": round((pause_us - now_us) / 1e6, 1) if pause_us > now_us else 0.0,
        "learned_limit_per_s": None,
    }


def read_breaker(client: redis.Redis, keys: Keys) -> dict[str, Any] | None:
    """The fleet's breaker (state, since, reason). Issue 7's reader replaces this."""
    return None


def list_batches(client: redis.Redis, keys: Keys) -> list[dict[str, Any]] | None:
    """Batches in progress (id, done, total). Issue 10's reader replaces this."""
    return None


def dead_by_code(client: redis.Redis, keys: Keys) -> tuple[dict[str, int], int]:
    """Dead letters counted by error code, over the newest `DEAD_SCAN_LIMIT`."""
    counts: Counter[str] = Counter()
    entries: list[Any] = client.xrevrange(keys.dead, count=DEAD_SCAN_LIMIT) or []
    for _entry_id, fields in entries:
        try:
            error = json.loads((fields or {}).get("dead", "{}")).get("error") or {}
        except (json.JSONDecodeError, AttributeError):
            error = {}
        counts[str(error.get("code") or "unknown")] += 1
    return dict(counts.most_common()), len(entries)


def finished_per_s(client: redis.Redis, keys: Keys, now_s: float) -> float:
    """Outcomes recorded per second over the last `RATE_WINDOW_S` (stream ids are times)."""
    since_ms = int((now_s - RATE_WINDOW_S) * 1000)
    recent: list[Any] = client.xrevrange(keys.results, min=f"{since_ms}-0", count=RATE_SAMPLE) or []
    if len(recent) < RATE_SAMPLE:
        return round(len(recent) / RATE_WINDOW_S, 2)
    # A busy fleet: the newest RATE_SAMPLE entries span less than the window.
    oldest_ms = int(str(recent[-1][0]).split("-")[0])
    return round(len(recent) / max(now_s - oldest_ms / 1000, 0.001), 2)


def read_status(client: redis.Redis, settings: Settings) -> FleetStatus:
    keys = Keys(settings.grants_key_prefix)
    now_s = time.time()
    by_code, counted = dead_by_code(client, keys)
    status = FleetStatus(
        queue=settings.grants_queue,
        queue_depth=int(client.llen(settings.grants_queue)),
        intake_pending=int(client.xlen(keys.intake)),
        workers=read_workers(client, keys, now_s),
        finished_per_s=finished_per_s(client, keys, now_s),
        flow=read_flow_state(client, keys, settings),
        breaker=read_breaker(client, keys),
        dead_letters=int(client.xlen(keys.dead)),
        dead_by_code=by_code,
        dead_counted=counted,
        batches=list_batches(client, keys),
    )
    if status.dead_letters > counted:
        status.notes.append(f"dead letters by code: the newest {counted} counted")
    return status


def render(status: FleetStatus, console: Console) -> None:
    in_flight = sum(worker.busy for worker in status.workers)
    capacity = sum(worker.capacity for worker in status.workers)
    flow = status.flow
    ceiling = f"{flow['rate_limit_per_s']}/s" if flow["rate_limit_per_s"] else "off"
    learned = flow["learned_limit_per_s"]
    console.print(
        f"[bold]queue[/] {status.queue}: {status.queue_depth} waiting, "
        f"{status.intake_pending} on the intake stream"
    )
    console.print(
        f"[bold]fleet[/] {len(status.workers)} workers, {in_flight}/{capacity} in flight, "
        f"{status.finished_per_s}/s finished (last {RATE_WINDOW_S} s); ceiling {ceiling}, "
        f"learned limit {f'{learned}/s' if learned else 'n/a'}"
        + (f", [yellow]paused {flow['paused_for_s']} s[/]" if flow["paused_for_s"] else "")
    )
    breaker = status.breaker
    console.print(
        "[bold]breaker[/] "
        + (f"{breaker.get('state')} ({breaker.get('reason', '')})" if breaker else "n/a")
    )
    if status.workers:
        table = Table("worker", "in flight", "capacity", "idle s", "beat age s", "stalled")
        for worker in status.workers:
            table.add_row(
                worker.hostname,
                str(worker.busy),
                str(worker.capacity),
                str(worker.idle_s),
                str(worker.age_s),
                "[red]yes[/]" if worker.stalled else "no",
            )
        console.print(table)
    else:
        console.print("[yellow]no worker has a live heartbeat[/]")
    codes = ", ".join(f"{code} {n}" for code, n in status.dead_by_code.items()) or "none"
    console.print(f"[bold]dead letters[/] {status.dead_letters}: {codes}")
    if status.batches is None:
        console.print("[bold]batches[/] n/a")
    else:
        console.print(f"[bold]batches in progress[/] {len(status.batches)}")
        for batch in status.batches:
            console.print(f"  {batch}")
    for note in status.notes:
        console.print(f"[dim]{note}[/]")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the screen.")
def status_command(as_json: bool) -> None:
    """The fleet at a glance: queue, workers, pace, breaker, dead letters, batches."""
    from grant_worker.worker.cli import load_settings

    settings = load_settings()
    client = make_redis(settings)
    try:
        status = read_status(client, settings)
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps(asdict(status), indent=None))
    else:
        render(status, Console(file=sys.stdout, soft_wrap=True))
