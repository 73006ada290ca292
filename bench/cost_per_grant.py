"""What one grant costs the worker: Redis commands, sequential round trips, CPU, and the
throughput and latency that follow, side by side with auth0-python in a plain loop.

    .venv/bin/python bench/cost_per_grant.py [--grants 2000] [--workers 2] [--concurrency 16]
                                             [--latency-requests 50] [--delay-ms 20]

Run by hand; loopback only; every phase bounded by a count and a time cap. It starts a Redis of
its own (so `INFO commandstats` counts nothing but this run) and an emulator with no latency and
no practical rate limit. Phases:

1. auth0-python: `client_grants.create` for `--grants` grants in a plain loop (the baseline).
2. grant-worker: the same grants through `--workers` worker processes of `--concurrency`
   threads, defaults otherwise. Redis commands per grant (commands run inside scripts
   included) from `INFO commandstats`, worker CPU per grant from the processes' own CPU time.
3. idle latency: `--latency-requests` requests one at a time, submit to recorded outcome (p50).
4. round trips: the same with `--delay-ms` added each way between the workers and Redis (a
   delaying TCP proxy); (latency - the undelayed one) / (2 x delay) is the number of sequential
   round trips a request makes to Redis.
5. where the commands go: `MONITOR` during a few idle requests, each command put in the phase
   of a request that the key it touches belongs to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from typing import Any

import redis
from auth0.authentication import GetToken
from auth0.management.client import Auth0
from shared import emulator_settings, free_port, own_redis

from grant_worker.config.settings import Settings
from grant_worker.emulator.testing import EmulatorAdmin, start_emulator_process
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess

API = "https://api.example.com/"
PHASE_CAP_S = 600.0
SEEDED_CLIENTS = 5000  # svc-00000 … svc-04999 in the emulator's default tenant
NO_LIMIT = "1000000"  # requests/s: the emulator's bucket never empties


class DelayProxy:
    """A TCP proxy on loopback that holds every chunk `delay_s` before passing it on."""

    def __init__(self, target_port: int, delay_s: float) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, name="delay-proxy", daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Each chunk is delivered `delay_s` after it arrived, in order, without holding up the
        # reading of the next: a link with that one-way latency, not a slower one.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    writer.close()
                    return
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while chunk := await reader.read(65536):
                queue.put_nowait((self._loop.time() + self.delay_s, chunk))
        except ConnectionError:
            pass
        queue.put_nowait((self._loop.time() + self.delay_s, b""))
        await sender


def worker_settings(redis_port: int, base_url: str, concurrency: int, tag: str) -> Settings:
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    return emulator_settings(base_url, tag, redis_url, grants_concurrency=concurrency)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` (threads included)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def commands_run(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def sdk_loop(base_url: str, count: int) -> float:
    """Grants per second of auth0-python creating `count` grants one after another."""
    domain = base_url.removeprefix("http://")
    token = GetToken(domain, "grant-worker", "emulator-secret", protocol="http").client_credentials(
        audience=f"https://{domain}/api/v2/"
    )["access_token"]
    sdk = Auth0(base_url=f"{base_url}/api/v2", token=token)
    started = time.monotonic()
    for n in range(count):
        sdk.client_grants.create(client_id=f"svc-{n:05d}", audience=API)
    return count / (time.monotonic() - started)


def grants(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"grant": {"client_id": f"svc-{(start + n) % SEEDED_CLIENTS:05d}", "audience": API}}
        for n in range(count)
    ]


def throughput_phase(
    settings: Settings, redis_port: int, count: int, workers: int
) -> tuple[float, float, float, Counter[str]]:
    """(grants/s, commands per grant, CPU ms per grant, commands by name) for `count` grants."""
    admin = redis.Redis(port=redis_port)
    processes = [WorkerProcess(settings).start() for _ in range(workers)]
    try:
        with GrantClient(settings) as client:
            requests = grants(count)
            time.sleep(1)  # past the workers' start-up writes
            admin.config_resetstat()
            cpu_before = [cpu_s(p.process.pid) for p in processes if p.process]
            started = time.monotonic()
            ids = client.submit_many(requests)
            outcomes = list(client.wait_many(ids, timeout_s=PHASE_CAP_S))
            seconds = time.monotonic() - started
            cpu_after = [cpu_s(p.process.pid) for p in processes if p.process]
            calls = commands_run(admin)
    finally:
        for process in processes:
            process.stop()
    done = sum(1 for outcome in outcomes if outcome.done)
    if done != count:
        raise SystemExit(f"only {done} of {count} grants ended done")
    # The producer's and reader's own commands (LPUSH / EVALSHA of the enqueue, XREAD of the
    # outcomes) are counted too: they are part of what a grant costs Redis.
    per_grant = sum(calls.values()) / count
    cpu_ms = 1000 * (sum(cpu_after) - sum(cpu_before)) / count
    return count / seconds, per_grant, cpu_ms, Counter(calls)


def latency_phase(settings: Settings, requests: int, start: int) -> list[float]:
    """Submit-to-outcome seconds of `requests` requests sent one at a time to idle workers."""
    seconds: list[float] = []
    with GrantClient(settings) as client:
        for request in grants(requests, start):
            began = time.monotonic()
            (request_id,) = client.submit_many([request])
            next(iter(client.wait_many([request_id], timeout_s=60)))
            seconds.append(time.monotonic() - began)
    return seconds


PHASES = (
    # (phase of a request, substrings of the keys its commands touch), first match wins.
    ("take off the queue", ("taking:", "unacked", "held:")),
    ("receipt: delivery count", ("deliveries:",)),
    ("claim of the request id", ("claim:",)),
    ("request lock", (":lock:",)),
    ("sent marker", ("sent:",)),
    ("pace and breaker", (":pace", ":breaker")),
    ("outcome record and streams", ("outcome:", "results", ":dead", ":events", "batch")),
    ("dashboard counters", ("activity:",)),
    ("worker background", ("heartbeat:", "workers", "probe:", "readyz:", "recovering:")),
)


def phase_table(redis_port: int, settings: Settings, requests: int, start: int) -> None:
    """Run `requests` idle requests under MONITOR and print commands per request by phase."""
    prefix = settings.grants_key_prefix
    lines: list[str] = []
    # MONITOR's stream lags behind on a busy machine: it is read up to this marker, not cut
    # off when the requests are done.
    end_mark = f"cost-per-grant-end-{uuid.uuid4().hex}"

    def monitor() -> None:
        with redis.Redis(port=redis_port).monitor() as watching:
            for command in watching.listen():
                line = str(command.get("command", ""))
                if end_mark in line:
                    return
                lines.append(line)

    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    time.sleep(0.5)
    latency_phase(settings, requests, start)
    redis.Redis(port=redis_port).echo(end_mark)
    thread.join(60)
    by_phase: Counter[str] = Counter()
    for line in lines:
        words = line.split()
        if not words:
            continue
        name = words[0].upper()
        keys = " ".join(words[1:])
        found = next(
            (phase for phase, marks in PHASES if any(mark in keys for mark in marks)), None
        )
        if found is None:
            found = (
                "the queue (LPUSH, BRPOPLPUSH)"
                if settings.grants_queue in keys
                else ("other (" + name + ")")
            )
        elif prefix not in keys and settings.grants_queue not in keys:
            found = "other (" + name + ")"
        by_phase[found] += 1
    print(
        f"\nwhere the commands go ({requests} idle requests, per request; scripts' own included):"
    )
    for phase, calls in by_phase.most_common():
        print(f"  {calls / requests:6.1f}  {phase}")
    print(f"  {sum(by_phase.values()) / requests:6.1f}  in all")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grants", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-requests", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    emulator = start_emulator_process(port, "--rate-limit", NO_LIMIT, "--burst", NO_LIMIT)
    admin = EmulatorAdmin(base_url)
    try:
        with own_redis() as redis_port:
            admin.reset()
            sdk_per_s = sdk_loop(base_url, args.grants)
            admin.reset()
            tag = uuid.uuid4().hex[:8]
            settings = worker_settings(redis_port, base_url, args.concurrency, tag)
            per_s, commands, cpu_ms, calls = throughput_phase(
                settings, redis_port, args.grants, args.workers
            )
            admin.reset()
            with WorkerProcess(settings):
                time.sleep(1)
                idle = latency_phase(settings, args.latency_requests, 2_500)
                phase_table(redis_port, settings, 10, 3_500)
            proxy = DelayProxy(redis_port, args.delay_ms / 1000)
            through_proxy = {"REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
            with WorkerProcess(settings, extra_env=through_proxy):
                time.sleep(2)
                slow = latency_phase(settings, max(5, args.latency_requests // 5), 4_000)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    idle_p50 = statistics.median(idle)
    slow_p50 = statistics.median(slow)
    trips = (slow_p50 - idle_p50) / (2 * args.delay_ms / 1000)
    print(f"\n{args.grants} grants, {args.workers} workers x {args.concurrency} threads, defaults")
    print(f"  auth0-python loop       {sdk_per_s:8.1f} grants/s")
    print(f"  grant-worker            {per_s:8.1f} grants/s   ratio {per_s / sdk_per_s:.2f}")
    print(f"  Redis commands / grant  {commands:8.1f}")
    print(f"  worker CPU / grant      {cpu_ms:8.2f} ms")
    print(f"  idle latency p50        {1000 * idle_p50:8.1f} ms")
    print(
        f"  with {args.delay_ms:g} ms each way to Redis: p50 {1000 * slow_p50:.0f} ms, "
        f"{trips:.1f} sequential round trips per request"
    )
    print(
        "  commands by name / grant: "
        + ", ".join(f"{name} {count / args.grants:.1f}" for name, count in calls.most_common(14))
    )


if __name__ == "__main__":
    main()
