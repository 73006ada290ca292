"""Zero-configuration flow control against Auth0's tiers, beside auth0-python in the same run.

    .venv/bin/python bench/flow_control.py [--seconds 20] [--cases free,self-service,...]
                                           [--semantics full,next] [--neighbour] [--no-sdk]

Run by hand; loopback only; each phase bounded by its grant count and a time cap. Needs the
Redis at REDIS_URL (default redis://127.0.0.1:6379/0); uses a queue and key prefix of its own.

Each case runs the emulator in its own process as one tenant (100 ms latency, like a real
one): a bucket of `burst` refilled at `rate` per second, whose x-ratelimit-reset means "bucket
full" or "next call" (`--semantics`). Its grant count is chosen so that the physical limit,
(grants - burst) / rate, is about `--seconds`. Phases, each on a freshly reset tenant:

1. auth0-python (current major, default retries) creating the grants from 16 threads;
2. grant-worker with NO rate settings (GRANTS_RATE_LIMIT=auto): 2 worker processes of the
   default concurrency, the grants submitted at once, followed to their outcomes.

`--neighbour` adds the neighbour case: a tenant of 20 req/s (burst 20) whose other
applications spend 8 req/s; the fleet's limit is then (grants - 20) / 12 s (the full bucket at
the start, then the 12 req/s left), and the neighbours' own 429s are counted. Printed per
phase: created, lost, duplicates, 429s (share of calls), seconds and the ratio to the physical
limit; the goals are 1.05x (1.10x with neighbours) and 1 % 429s.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from auth0.authentication import GetToken
from auth0.management.client import Auth0
from shared import emulator_settings

from grant_worker.emulator.testing import EmulatorAdmin, start_emulator_process
from grant_worker.tasks.connections import delete_deployment, make_redis
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess

API = "https://api.example.com/"
PHASE_CAP_S = 900.0
LATENCY_MS = 100
SDK_THREADS = 16
TIERS = {  # name: (rate per s, burst), Auth0's published Management API limits
    "free": (2.0, 10),
    "self-service": (16.0, 50),
    "enterprise": (50.0, 50),
    "enterprise-plus": (100.0, 100),
}


@dataclass
class Figures:
    created: int
    lost: int
    seconds: float
    duplicates: int = 0
    rate_limited: int = 0
    calls: int = 0
    background_calls: int = 0
    background_limited: int = 0


def start_emulator(port: int, rate: float, burst: int, semantics: str, background: float) -> Any:
    options = ["--rate-limit", str(rate), "--burst", str(burst), "--latency-ms", str(LATENCY_MS)]
    options += ["--reset-semantics", semantics, "--background-rps", str(background)]
    return start_emulator_process(port, *options)


def client_ids(count: int) -> list[str]:
    return [f"svc-{n:05d}" for n in range(count)]


def run_sdk(base_url: str, count: int) -> Figures:
    domain = base_url.removeprefix("http://")
    token = GetToken(domain, "grant-worker", "emulator-secret", protocol="http").client_credentials(
        audience=f"https://{domain}/api/v2/"
    )["access_token"]
    sdk = Auth0(base_url=f"{base_url}/api/v2", token=token)  # the SDK's default retries

    def create(client_id: str) -> bool:
        try:
            sdk.client_grants.create(client_id=client_id, audience=API)
            return True
        except Exception:
            return False

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=SDK_THREADS) as pool:
        results = list(pool.map(create, client_ids(count), timeout=PHASE_CAP_S))
    return Figures(results.count(True), results.count(False), time.monotonic() - started)


def run_worker(base_url: str, count: int) -> Figures:
    tag = uuid.uuid4().hex[:8]
    # Zero configuration: only where the tenant and Redis are, and names of our own.
    settings = emulator_settings(base_url, tag)
    processes = [WorkerProcess(settings).start() for _ in range(2)]
    try:
        with GrantClient(settings) as client:
            requests = [{"grant": {"client_id": c, "audience": API}} for c in client_ids(count)]
            started = time.monotonic()
            ids = client.submit_many(requests)
            outcomes = list(client.wait_many(ids, timeout_s=PHASE_CAP_S))
            seconds = time.monotonic() - started
    finally:
        for process in processes:
            process.stop()
        delete_deployment(make_redis(settings), settings)
    created = sum(1 for outcome in outcomes if outcome.status in ("created", "exists"))
    return Figures(created, count - created, seconds)


def phase(admin: EmulatorAdmin, run: Callable[[], Figures]) -> Figures:
    admin.reset()
    figures = run()
    stats: dict[str, Any] = admin.stats()
    figures.rate_limited = int(stats["rate_limited"])
    figures.calls = int(stats["requests_by_route"].get("POST /api/v2/client-grants", 0))
    figures.background_calls = int(stats["background_calls"])
    figures.background_limited = int(stats["background_rate_limited"])
    keys = Counter((g.get("client_id"), g["audience"]) for g in admin.grants())
    figures.duplicates = sum(n - 1 for n in keys.values() if n > 1)
    return figures


def show(name: str, figures: Figures, limit_s: float) -> None:
    share = 100 * figures.rate_limited / max(1, figures.calls)
    line = (
        f"  {name:>12}: created {figures.created:5d}  lost {figures.lost:4d}  "
        f"dup {figures.duplicates}  429s {figures.rate_limited:5d} ({share:5.1f} %)  "
        f"{figures.seconds:6.1f} s = {figures.seconds / limit_s:5.2f}x the limit"
    )
    if figures.background_calls:
        bg_share = 100 * figures.background_limited / figures.background_calls
        line += f"  neighbours' 429s {figures.background_limited}/{figures.background_calls}"
        line += f" ({bg_share:.1f} %)"
    print(line, flush=True)


def run_case(
    name: str,
    rate: float,
    burst: int,
    semantics: str,
    count: int,
    limit_s: float,
    args: Any,
    background: float = 0.0,
) -> None:
    port = args.port
    base_url = f"http://127.0.0.1:{port}"
    emulator = start_emulator(port, rate, burst, semantics, background)
    admin = EmulatorAdmin(base_url)
    print(
        f"{name}: {rate:g} req/s burst {burst}, reset={semantics}"
        + (f", neighbours {background:g} req/s" if background else "")
        + f"; {count} grants, physical limit {limit_s:.1f} s",
        flush=True,
    )
    try:
        if not args.no_sdk:
            show("auth0-python", phase(admin, lambda: run_sdk(base_url, count)), limit_s)
        show("grant-worker", phase(admin, lambda: run_worker(base_url, count)), limit_s)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="physical limit per case")
    parser.add_argument("--cases", default=",".join(TIERS))
    parser.add_argument("--semantics", default="full,next")
    parser.add_argument("--neighbour", action="store_true", help="run the neighbour case too")
    parser.add_argument("--only-neighbour", action="store_true")
    parser.add_argument("--no-sdk", action="store_true", help="skip the auth0-python phase")
    parser.add_argument("--port", type=int, default=8797)
    args = parser.parse_args()
    if not args.only_neighbour:
        for name in args.cases.split(","):
            rate, burst = TIERS[name]
            count = int(burst + rate * args.seconds)
            for semantics in args.semantics.split(","):
                run_case(name, rate, burst, semantics, count, (count - burst) / rate, args)
    if args.neighbour or args.only_neighbour:
        # The bucket starts full (20, shared); then 12 of the 20 refilled per second are ours.
        count = int(20 + 12 * args.seconds)
        for semantics in args.semantics.split(","):
            limit_s = (count - 20) / 12
            run_case("neighbour", 20.0, 20, semantics, count, limit_s, args, background=8.0)


if __name__ == "__main__":
    main()
