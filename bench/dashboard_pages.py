"""Server time of the dashboard's pages with 1,000,000 outcomes in the results stream, against a
baseline of 10,000 in the same run, on a Redis of its own.

    .venv/bin/python bench/dashboard_pages.py [--outcomes 1000000] [--dead 100000]
                                              [--queued 100000] [--repeat 30]

Run by hand. Starts `redis-server` on a free port without persistence (nothing is written to
the shared Redis), fills two deployments (the baseline and the large one) with server-side Lua,
and times each page in-process (Starlette's TestClient: routing, every Redis read, templates),
so the figure is server time without a network. Printed per page: median and p95 in ms for
both deployments, and the ratio large / baseline. The pages read only bounded windows, so the
ratio should stay near 1 and every figure under 300 ms. "Redis ms" is what one view of a
page (1M deployment) keeps the shared Redis busy, from INFO commandstats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import redis
from shared import own_redis
from starlette.testclient import TestClient

from grant_worker.config.settings import Settings
from grant_worker.tasks.activity import CALL_SERIES, outcome_series
from grant_worker.tasks.keys import Keys
from grant_worker.worker.dashboard.app import create_app

PAGES = [
    ("overview", "/"),
    ("overview fragment", "/?fragment"),
    ("batches", "/batches"),
    ("batch rows", "/batches/batch-7"),
    ("dead letters", "/dead"),
    ("dead, filtered", "/dead?code=not_found&batch=batch-3"),
    ("search", "/search?request_id=req-0000000042"),
]
BUDGET_MS = 300.0
BASELINE_OUTCOMES = 10_000

# KEYS: results, dead. ARGV: first n, count, dead_every (a dead letter per this many outcomes).
_FILL_STREAMS = """
local first = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local dead_every = tonumber(ARGV[3])
for n = first, first + count - 1 do
  local rid = string.format('req-%010d', n)
  local batch = 'batch-' .. (n % 10)
  local failed = dead_every > 0 and n % dead_every == 0
  local status = failed and 'failed' or 'created'
  local outcome = '{"request_id":"' .. rid .. '","batch_id":"' .. batch .. '","status":"' ..
    status .. '","grant":{"id":"cgr_' .. rid .. '","client_id":"svc-' .. (n % 5000) ..
    '","audience":"https://api.example.com/","scope":["read:data","write:data"]},' ..
    '"error":null,"differences":null,"attempts":1,"received_at":"2026-11-27T03:00:00.000Z",' ..
    '"finished_at":"2026-11-27T03:00:00.120Z","metadata":{"ticket":"ONB-' .. n .. '"}}'
  redis.call('XADD', KEYS[1], '*', 'request_id', rid, 'status', status, 'outcome', outcome)
  if failed then
    local dead = '{"request_id":"' .. rid .. '","batch_id":"' .. batch .. '","status":"failed",' ..
      '"error":{"code":"not_found","message":"404 Not Found"},"attempts":1,' ..
      '"received_at":"2026-11-27T03:00:00.000Z","finished_at":"2026-11-27T03:00:00.120Z",' ..
      '"request":{"request_id":"' .. rid .. '","grant":{"client_id":"svc-1",' ..
      '"audience":"https://nope.example.com/"}}}'
    redis.call('XADD', KEYS[2], '*', 'request_id', rid, 'status', 'failed', 'dead', dead)
  end
end
return count
"""

# KEYS: queue. ARGV: count. Messages as kombu's Redis transport stores them (base64 body).
_FILL_QUEUE = """
for n = 1, tonumber(ARGV[1]) do
  redis.call('LPUSH', KEYS[1], ARGV[2])
end
return 1
"""


def queued_message() -> str:
    import base64
    import json

    body = json.dumps(
        [
            [],
            {
                "request": {
                    "request_id": "q-1",
                    "batch_id": "batch-queued",
                    "grant": {"client_id": "svc-1", "audience": "https://api.example.com/"},
                }
            },
            {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
        ]
    )
    return json.dumps(
        {
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"task": "grants.create", "id": "q-1"},
            "properties": {"body_encoding": "base64", "delivery_tag": "t"},
        }
    )


def fill(
    client: redis.Redis, settings: Settings, outcomes: int, dead_every: int, queued: int
) -> None:
    keys = Keys(settings.grants_key_prefix)
    streams = client.register_script(_FILL_STREAMS)
    chunk = 20_000
    for first in range(0, outcomes, chunk):
        streams(
            keys=[keys.results, keys.dead], args=[first, min(chunk, outcomes - first), dead_every]
        )
    message = queued_message()
    for first in range(0, queued, chunk):
        client.eval(_FILL_QUEUE, 1, settings.grants_queue, min(chunk, queued - first), message)
    # A quarter of an hour of per-second counters, as busy as the worker would leave them.
    now = int(time.time())
    pipe = client.pipeline(transaction=False)
    for second in range(now - 900, now + 1):
        key = keys.activity(second // 60)
        pipe.hincrby(key, f"{second % 60}:{outcome_series('created')}", 40)
        pipe.hincrby(key, f"{second % 60}:{CALL_SERIES}", 45)
    pipe.execute()


def redis_busy_us(client: redis.Redis) -> float:
    """Microseconds Redis spent executing commands since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats")
    return float(sum(entry["usec"] for entry in stats.values()))


def time_pages(
    settings: Settings, repeat: int, client: redis.Redis
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per page: server times (ms) and the Redis time one view costs (ms, averaged)."""
    app = create_app(settings)
    timings: dict[str, list[float]] = {}
    redis_ms: dict[str, float] = {}
    with TestClient(app, base_url="http://127.0.0.1:8808") as browser:
        for name, path in PAGES:
            headers = {"HX-Request": "true"} if "fragment" in path else {}
            url = path.replace("?fragment", "")
            browser.get(url, headers=headers)  # warm: templates compiled, scripts loaded
            client.config_resetstat()
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                answer = browser.get(url, headers=headers)
                samples.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
            redis_ms[name] = redis_busy_us(client) / repeat / 1000
            timings[name] = samples
    return timings, redis_ms


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(int(len(samples) * 0.95) - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=1_000_000)
    parser.add_argument("--dead", type=int, default=100_000, help="dead letters among them")
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    with own_redis() as port:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)

        def deployment(name: str) -> Settings:
            return Settings(  # type: ignore[call-arg]
                _env_file=None,
                redis_url=url,
                grants_key_prefix=f"{name}:",
                grants_queue=f"{name}-queue",
                grants_stream_maxlen=0,
            )

        small, large = deployment("baseline"), deployment("large")
        started = time.monotonic()
        # The baseline fills every window the pages read (1,000 outcomes, 500 dead letters,
        # 1,000 queued), so the ratio shows what the stream's length alone costs.
        fill(client, small, BASELINE_OUTCOMES, 10, 2_000)
        dead_every = max(args.outcomes // max(args.dead, 1), 1) if args.dead else 0
        fill(client, large, args.outcomes, dead_every, args.queued)
        keys = Keys(large.grants_key_prefix)
        print(
            f"filled in {time.monotonic() - started:.0f} s: results {client.xlen(keys.results):,}, "
            f"dead {client.xlen(keys.dead):,}, queued {client.llen(large.grants_queue):,}; "
            f"Redis used {client.info('memory')['used_memory_human']}"
        )
        baseline, _ = time_pages(small, args.repeat, client)
        measured, redis_ms = time_pages(large, args.repeat, client)

    print(f"\nserver time per page, ms (median / p95 of {args.repeat}); budget {BUDGET_MS:.0f} ms")
    small_title, large_title = f"{BASELINE_OUTCOMES:,} outcomes", f"{args.outcomes:,} outcomes"
    print(f"{'page':<20}{small_title:>18}{large_title:>22}{'ratio':>8}{'Redis ms':>10}")
    worst = 0.0
    for name, _path in PAGES:
        base, big = baseline[name], measured[name]
        ratio = statistics.median(big) / statistics.median(base)
        worst = max(worst, p95(big))
        print(
            f"{name:<20}{statistics.median(base):>9.1f} / {p95(base):>6.1f}"
            f"{statistics.median(big):>13.1f} / {p95(big):>6.1f}{ratio:>8.2f}"
            f"{redis_ms[name]:>10.2f}"
        )
    verdict = "within" if worst < BUDGET_MS else "OVER"
    print(f"\nworst p95 with {large_title}: {worst:.1f} ms ({verdict} {BUDGET_MS:.0f} ms)")


if __name__ == "__main__":
    main()
