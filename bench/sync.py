"""`grants sync --prune` of one audience against a 50 requests/s tenant: time against the
physical limit (every call the sync needs, listing pages included, at the tenant's rate).

    .venv/bin/python bench/sync.py [--existing 4000] [--creates 1000] [--updates 1000]
                                   [--revokes 1000] [--rate 50] [--workers 2] [--port 8799]

Run by hand; loopback only. Needs the Redis at REDIS_URL (default redis://127.0.0.1:6379/0);
uses a queue and key prefix of its own and deletes them afterwards. The emulator runs in its
own process with one tenant-wide bucket of `--rate` requests/s (burst the same), seeded (not
through the API, so not counted) with `--existing` grants on one audience for svc-00000 …;
the default tenant's 5,000 svc- clients hold the existing grants and the creates.

The file lists: `--creates` clients without a grant, `--updates` existing grants with another
scope, every other existing grant unchanged except the last `--revokes`, which it leaves out.
`grants sync FILE --audience A --prune --yes --wait` runs as a real process (as a user runs it)
against real worker processes with the default pacing ("auto"); it is timed from its start to
its exit. Needed calls: the listing pages, one POST per create, one PATCH per update and one
DELETE per revoke. Lost: rows not ending done. Afterwards the tenant's grants on the audience
must equal the file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from shared import emulator_settings

from grant_worker.emulator.testing import EmulatorAdmin, start_emulator_process
from grant_worker.tasks.auth0.api import PAGE_SIZE
from grant_worker.tasks.connections import delete_deployment, make_redis
from grant_worker.worker.testing import WorkerProcess, settings_env

AUDIENCE = "https://api.example.com/"
SEEDED_CLIENTS = 5000
OLD_SCOPE = ["read:data"]
NEW_SCOPE = ["read:data", "write:data"]
CAP_S = 1200.0
ROUTES = {
    "listing pages": "GET /api/v2/client-grants",
    "lookups by id": "GET /api/v2/client-grants/{id}",
    "POSTs": "POST /api/v2/client-grants",
    "PATCHes": "PATCH /api/v2/client-grants/{id}",
    "DELETEs": "DELETE /api/v2/client-grants/{id}",
}


def client(n: int) -> str:
    return f"svc-{n:05d}"


def write_seed(path: Path, existing: int) -> None:
    """The default tenant with `existing` grants on AUDIENCE (svc-00000 …)."""
    from importlib import resources

    text = resources.files("grant_worker.emulator").joinpath("default_seed.yaml").read_text()
    seed = yaml.safe_load(text)
    seed["grants"] = [
        {"client_id": client(n), "audience": AUDIENCE, "scope": OLD_SCOPE} for n in range(existing)
    ]
    path.write_text(json.dumps(seed))


def write_file(path: Path, args: argparse.Namespace) -> dict[str, list[str]]:
    """The sync file; returns the wanted scope per client (what the tenant must hold after)."""
    wanted: dict[str, list[str]] = {}
    for n in range(args.existing - args.revokes):
        wanted[client(n)] = NEW_SCOPE if n < args.updates else OLD_SCOPE
    for n in range(args.existing, args.existing + args.creates):
        wanted[client(n)] = NEW_SCOPE
    lines = [json.dumps({"grant": {"client_id": c, "audience": AUDIENCE, "scope": s}})
             for c, s in wanted.items()]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return wanted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--existing", type=int, default=4000)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--revokes", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    if args.existing + args.creates > SEEDED_CLIENTS:
        parser.error(f"--existing + --creates: the tenant has {SEEDED_CLIENTS} svc- clients")
    if args.updates + args.revokes > args.existing:
        parser.error("--updates + --revokes: at most --existing")
    base_url = f"http://127.0.0.1:{args.port}"
    tag = uuid.uuid4().hex[:8]
    settings = emulator_settings(base_url, tag, grants_retry_budget_s=120)
    pages = math.ceil(args.existing / PAGE_SIZE) or 1
    needed = pages + args.creates + args.updates + args.revokes
    physical_s = needed / args.rate
    redis = make_redis(settings)
    workers: list[WorkerProcess] = []
    with tempfile.TemporaryDirectory() as scratch:
        seed_path = Path(scratch) / "seed.json"
        write_seed(seed_path, args.existing)
        emulator = start_emulator_process(
            args.port, "--seed", str(seed_path), "--rate-limit", str(args.rate),
            "--burst", str(int(args.rate)), ready_within_s=60,
        )  # fmt: skip
        admin = EmulatorAdmin(base_url)
        try:
            path = Path(scratch) / "desired.jsonl"
            wanted = write_file(path, args)
            workers = [WorkerProcess(settings).start() for _ in range(args.workers)]
            admin.reset()
            # The tenant's bucket refills while the workers start: the run begins with it full.
            time.sleep(2)
            before_tokens = admin.stats()["tokens_issued"]
            env = {**os.environ, **settings_env(settings), "GRANTS_PROGRESS_INTERVAL_S": "10"}
            command = [sys.executable, "-m", "grant_worker.worker", "sync", str(path),
                       "--audience", AUDIENCE, "--prune", "--yes", "--wait"]  # fmt: skip
            started = time.monotonic()
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=CAP_S)
            seconds = time.monotonic() - started
            stats: dict[str, Any] = admin.stats()
            report(args, stats, done, seconds, needed, physical_s, pages, before_tokens)
            held = {g["client_id"]: sorted(g.get("scope", [])) for g in admin.grants()
                    if g["audience"] == AUDIENCE}  # fmt: skip
            equal = held == {c: sorted(s) for c, s in wanted.items()}
            print(f"tenant's grants on {AUDIENCE} equal the file: {equal} "
                  f"({len(held)} held, {len(wanted)} wanted)")  # fmt: skip
        finally:
            for worker in workers:
                worker.stop(timeout_s=30)
            emulator.terminate()
            emulator.wait(timeout=10)
            delete_deployment(redis, settings)
            for key in redis.scan_iter(f"{settings.grants_queue}*"):
                redis.delete(key)


def report(
    args: argparse.Namespace,
    stats: dict[str, Any],
    done: subprocess.CompletedProcess[str],
    seconds: float,
    needed: int,
    physical_s: float,
    pages: int,
    before_tokens: int,
) -> None:
    routes = stats["requests_by_route"]
    received = {name: routes.get(route, 0) for name, route in ROUTES.items()}
    calls = sum(received.values())
    summary = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    statuses: dict[str, int] = summary.get("statuses", {})
    ended_done = sum(statuses.get(s, 0) for s in ("created", "updated", "exists", "revoked",
                                                  "absent", "unchanged"))  # fmt: skip
    rows = args.existing - args.revokes + args.creates + args.revokes
    print(
        f"sync of {args.existing} existing grants: {args.creates} creates, {args.updates} "
        f"updates, {args.revokes} revokes; tenant {args.rate:g} req/s, {args.workers} workers"
    )
    print(f"exit {done.returncode}; summary {json.dumps(summary)}")
    print(
        "calls the tenant received: "
        + ", ".join(f"{n} {k}" for k, n in received.items())
        + f"; 429s {stats['rate_limited']}; tokens {stats['tokens_issued'] - before_tokens}"
    )
    print(
        f"calls needed: {needed} ({pages} listing pages + {args.creates} POSTs + "
        f"{args.updates} PATCHes + {args.revokes} DELETEs); physical limit "
        f"{physical_s:.1f} s"
    )
    print(
        f"measured {seconds:.1f} s = {seconds / physical_s:.3f} x physical (goal <= 1.10); "
        f"at the calls received ({calls}): {seconds / (calls / args.rate):.3f} x"
    )
    print(f"lost: {rows - ended_done} of {rows} rows not ending done")
    if done.returncode != 0:
        print(done.stderr[-2000:])


if __name__ == "__main__":
    main()
