"""How fast the Auth0 emulator serves, against a trivial aiohttp app served the same way.

    .venv/bin/python bench/emulator_throughput.py [--requests 5000] [--concurrency 50]
                                                  [--in-flight 600] [--latency-ms 1000]

Run by hand; loopback only; every phase is bounded by a request count and a time cap.
Each server runs in its own process (so the load generator does not share its GIL), on a
free port, started by the same `emulator.server.start_app` with access logs off. Phases:

1. throughput: `--requests` calls from `--concurrency` concurrent clients, no latency set:
   baseline GET (trivial JSON handler) vs emulator POST /client-grants (distinct grants) and
   GET /client-grants/{id}. Goal: the emulator ≥ 1,000 requests/s.
2. in flight: `--in-flight` requests sent at once with `--latency-ms` of latency on both
   servers (the baseline sleeps as long). Goal: ≥ 500 requests held at once (the emulator's
   own max_in_flight counter), all answered.

Figures are printed with their ratio to the baseline; the exit code is 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from aiohttp import web

from grant_worker.emulator.server import start, start_app
from grant_worker.emulator.state import Emulator

AUDIENCES = (
    "https://api.example.com/",
    "https://billing.example.com/",
    "https://reports.example.com/",
)
SERVICE_CLIENTS = 5000  # svc-00000 ... svc-04999 in the default seed
PHASE_CAP_S = 60.0
THROUGHPUT_GOAL_RPS = 1000.0
IN_FLIGHT_GOAL = 500


# -- servers, each in its own process ----------------------------------------------------------


def _baseline_app(latency_ms: float) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ping", handle)
    return app


def _serve(kind: str, latency_ms: float, conn: Connection) -> None:
    async def main() -> None:
        if kind == "emulator":
            emulator = Emulator()
            if latency_ms:
                emulator.set_faults(latency_ms=latency_ms)
            runner, port = await start(emulator, "127.0.0.1", 0)
        else:
            runner, port = await start_app(_baseline_app(latency_ms), "127.0.0.1", 0)
        conn.send(port)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
        await runner.cleanup()

    asyncio.run(main())


class Server:
    """A server process on a free loopback port."""

    def __init__(self, kind: str, latency_ms: float = 0.0) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(
            target=_serve, args=(kind, latency_ms, child), daemon=True
        )
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError(f"the {kind} server did not start")
        self.base_url = f"http://127.0.0.1:{self._conn.recv()}"

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


# -- load ---------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


RequestMaker = Callable[[aiohttp.ClientSession, int], Any]


async def _load(name: str, make: RequestMaker, total: int, concurrency: int) -> Result:
    """`total` calls of `make(session, n)` from `concurrency` workers, capped at PHASE_CAP_S."""
    statuses: dict[int, int] = {}
    counter = iter(range(total))
    deadline = time.monotonic() + PHASE_CAP_S
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for n in counter:
                if time.monotonic() > deadline:
                    return
                async with make(session, n) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return Result(name, sum(statuses.values()), elapsed, statuses)


async def _token(session: aiohttp.ClientSession, base_url: str) -> str:
    host = base_url.removeprefix("http://")
    form = {
        "grant_type": "client_credentials",
        "client_id": "grant-worker",
        "client_secret": "emulator-secret",
        "audience": f"https://{host}/api/v2/",
    }
    async with session.post(f"{base_url}/oauth/token", data=form) as response:
        response.raise_for_status()
        token: str = (await response.json())["access_token"]
        return token


async def throughput(total: int, concurrency: int) -> list[Result]:
    baseline, emu = Server("baseline"), Server("emulator")
    try:
        results = [
            await _load(
                "baseline GET (trivial handler)",
                lambda s, n: s.get(f"{baseline.base_url}/ping"),
                total,
                concurrency,
            )
        ]
        async with aiohttp.ClientSession() as session:
            auth = {"Authorization": f"Bearer {await _token(session, emu.base_url)}"}
        grants_url = f"{emu.base_url}/api/v2/client-grants"

        def create(session: aiohttp.ClientSession, n: int) -> Any:
            body = {
                "client_id": f"svc-{n % SERVICE_CLIENTS:05d}",
                "audience": AUDIENCES[n // SERVICE_CLIENTS % len(AUDIENCES)],
                "scope": ["read:data"],
            }
            return session.post(grants_url, json=body, headers=auth)

        results.append(await _load("emulator POST /client-grants", create, total, concurrency))
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{emu.base_url}/__emulator/grants") as response,
        ):
            ids = [g["id"] for g in await response.json()] or ["cgr_none"]
        results.append(
            await _load(
                "emulator GET /client-grants/{id}",
                lambda s, n: s.get(f"{grants_url}/{ids[n % len(ids)]}", headers=auth),
                total,
                concurrency,
            )
        )
        return results
    finally:
        baseline.stop()
        emu.stop()


async def in_flight(count: int, latency_ms: float) -> tuple[list[Result], int]:
    baseline, emu = Server("baseline", latency_ms), Server("emulator", latency_ms)
    try:
        results = [
            await _load(
                f"baseline, {latency_ms:g} ms sleep",
                lambda s, n: s.get(f"{baseline.base_url}/ping"),
                count,
                count,
            )
        ]
        async with aiohttp.ClientSession() as session:
            auth = {"Authorization": f"Bearer {await _token(session, emu.base_url)}"}
        results.append(
            await _load(
                f"emulator GET list, {latency_ms:g} ms latency",
                lambda s, n: s.get(f"{emu.base_url}/api/v2/client-grants", headers=auth),
                count,
                count,
            )
        )
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{emu.base_url}/__emulator/stats") as response,
        ):
            max_in_flight: int = (await response.json())["max_in_flight"]
        return results, max_in_flight
    finally:
        baseline.stop()
        emu.stop()


def _print(results: Sequence[Result]) -> None:
    base = results[0].rps
    for r in results:
        ratio = r.rps / base if base else 0.0
        print(
            f"  {r.name:<42} {r.requests:>6} req in {r.seconds:6.2f} s = {r.rps:8.0f} req/s"
            f"  ({ratio:4.2f}x baseline)  statuses {dict(sorted(r.statuses.items()))}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=600)
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    args = parser.parse_args(argv)
    if args.requests > 3 * SERVICE_CLIENTS:
        parser.error(f"--requests is at most {3 * SERVICE_CLIENTS} (distinct grants available)")

    print(f"throughput: {args.requests} requests, {args.concurrency} concurrent, no latency")
    results = asyncio.run(throughput(args.requests, args.concurrency))
    _print(results)
    emulator_rps = min(r.rps for r in results[1:])

    print(f"in flight: {args.in_flight} requests at once, {args.latency_ms:g} ms latency")
    held, max_in_flight = asyncio.run(in_flight(args.in_flight, args.latency_ms))
    _print(held)
    answered = sum(held[1].statuses.values())
    print(f"  emulator max_in_flight = {max_in_flight}, answered {answered}/{args.in_flight}")

    ok = emulator_rps >= THROUGHPUT_GOAL_RPS and max_in_flight >= min(
        IN_FLIGHT_GOAL, args.in_flight
    )
    print(
        f"goals: >= {THROUGHPUT_GOAL_RPS:.0f} req/s "
        f"({'met' if emulator_rps >= THROUGHPUT_GOAL_RPS else 'MISSED'}: {emulator_rps:.0f}), "
        f">= {IN_FLIGHT_GOAL} in flight "
        f"({'met' if max_in_flight >= IN_FLIGHT_GOAL else 'MISSED'}: {max_in_flight})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
