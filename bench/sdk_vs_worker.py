"""Bulk provisioning against a rate-limited tenant: the official SDK in a thread pool (the
baseline) against grant-worker, in the same run, on the same emulated tenant.

    .venv/bin/python bench/sdk_vs_worker.py [--grants 1000] [--rate 50] [--threads 16]
                                            [--workers 2] [--concurrency 8]

Run by hand; loopback only; bounded by the grant count and a time cap per phase. Needs the
Redis at REDIS_URL (default redis://127.0.0.1:6379/0); uses a queue and key prefix of its own.

The emulator runs in its own process with one tenant-wide bucket of `--rate` requests/s (burst
the same), as an Enterprise tenant's Management API. Phases, each on a freshly reset tenant:

1. baseline: auth0-python (current major, default retries) creating `--grants` grants from a
   pool of `--threads` threads, as a pipeline script would; a call that still fails after the
   SDK's own retries is a lost grant.
2. grant-worker: the same grants enqueued with `GrantClient.submit_many` and worked on by
   `--workers` real worker processes, followed to their outcomes.

Printed per phase: grants created, lost (failed), 429s the tenant sent, seconds, grants/s,
and the worker's figures as ratios of the baseline's.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import uuid
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
PHASE_CAP_S = 600.0


@dataclass
class Figures:
    created: int
    lost: int
    rate_limited: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.created / self.seconds if self.seconds else 0.0


def start_emulator(port: int, rate: float) -> subprocess.Popen[bytes]:
    return start_emulator_process(port, "--rate-limit", str(rate), "--burst", str(int(rate)))


def client_ids(count: int) -> list[str]:
    return [f"svc-{n:05d}" for n in range(count)]


def run_sdk(base_url: str, count: int, threads: int) -> Figures:
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
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(create, client_ids(count), timeout=PHASE_CAP_S))
    seconds = time.monotonic() - started
    return Figures(results.count(True), results.count(False), 0, seconds)


def run_worker(base_url: str, count: int, workers: int, concurrency: int, rate: float) -> Figures:
    tag = uuid.uuid4().hex[:8]
    settings = emulator_settings(
        base_url,
        tag,
        grants_concurrency=concurrency,
        # The fleet's own ceiling just under the tenant's, so 429s stay rare.
        grants_rate_limit=rate * 0.9,
        grants_rate_burst=max(1, int(rate // 5)),
        grants_retry_budget_s=120,
    )
    processes = [WorkerProcess(settings).start() for _ in range(workers)]
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
    return Figures(created, count - created, 0, seconds)


def phase(admin: EmulatorAdmin, name: str, run: Callable[[], Figures]) -> Figures:
    admin.reset()
    figures = run()
    stats: dict[str, Any] = admin.stats()
    figures.rate_limited = int(stats["rate_limited"])
    print(
        f"{name:>13}: created {figures.created:5d}  lost {figures.lost:4d} "
        f"({100 * figures.lost / max(1, figures.created + figures.lost):4.1f} %)  "
        f"429s {figures.rate_limited:5d}  {figures.seconds:6.1f} s  {figures.per_s:6.1f} grants/s",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--port", type=int, default=8799)
    args = parser.parse_args()
    base_url = f"http://127.0.0.1:{args.port}"
    emulator = start_emulator(args.port, args.rate)
    admin = EmulatorAdmin(base_url)
    try:
        print(
            f"{args.grants} grants, tenant limit {args.rate:g} requests/s (burst {int(args.rate)})"
        )
        sdk = phase(admin, "auth0-python", lambda: run_sdk(base_url, args.grants, args.threads))
        worker = phase(
            admin,
            "grant-worker",
            lambda: run_worker(base_url, args.grants, args.workers, args.concurrency, args.rate),
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    created = worker.created / max(1, sdk.created)
    throttled = worker.rate_limited / max(1, sdk.rate_limited)
    print(
        f"ratios (grant-worker / auth0-python): created {created:.3f}, "
        f"lost {worker.lost}/{sdk.lost}, 429s {throttled:.3f}, "
        f"throughput {worker.per_s / max(0.001, sdk.per_s):.2f}"
    )


if __name__ == "__main__":
    main()
