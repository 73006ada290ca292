"""A 10,000-row `grants bulk` against a 50 requests/s tenant: time against the physical limit,
checking and enqueueing, the CLI's peak memory, and a run interrupted at half then resumed.

    .venv/bin/python bench/bulk_batch.py [--rows 10000] [--rate 50] [--workers 2]
                                         [--concurrency 16] [--port 8798]

Run by hand; loopback only. Needs the Redis at REDIS_URL (default redis://127.0.0.1:6379/0);
uses a queue and key prefix of its own and deletes them afterwards. The emulator runs in its
own process with one tenant-wide bucket of `--rate` requests/s (burst the same); the seeded
clients svc-00000 … svc-04999 hold one grant on each of two APIs, so rows are all distinct.

Phases, each on a freshly reset tenant, `grants bulk` a real process (as a user runs it):

1. enqueue baseline: the same requests sent one `send_task` each (a plain Celery producer),
   to a queue nobody consumes; the ratio is the CLI's check+enqueue time over it.
2. full run: `grants bulk FILE --wait` with the workers running. Time to the summary against
   the physical limit (rows / rate), check+enqueue time (from the process start to the last
   "enqueued" line), the CLI's peak RSS (getrusage of the child).
3. interrupted at half: SIGINT to `grants bulk --wait` once half the grants exist, SIGTERM to
   the workers, workers started again, the same command rerun. POSTs the tenant saw in all,
   against the rows (goal ≤ rows + 1 %) and against what a rerun without resume sends (2 x rows).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from shared import emulator_settings

from grant_worker.config.settings import Settings
from grant_worker.emulator.testing import EmulatorAdmin, start_emulator_process
from grant_worker.tasks.connections import delete_deployment, make_redis
from grant_worker.tasks.messages.inspection import TASK_NAME
from grant_worker.worker.process.app import create_app
from grant_worker.worker.testing import WorkerProcess, settings_env

APIS = ("https://api.example.com/", "https://billing.example.com/")
SEEDED_CLIENTS = 5000
CAP_S = 1200.0


def start_emulator(port: int, rate: float) -> subprocess.Popen[bytes]:
    return start_emulator_process(port, "--rate-limit", str(rate), "--burst", str(int(rate)))


def write_rows(path: Path, rows: int) -> None:
    lines = ["client_id,audience,scope"]
    for n in range(rows):
        client = f"svc-{n % SEEDED_CLIENTS:05d}"
        lines.append(f"{client},{APIS[n // SEEDED_CLIENTS % len(APIS)]},")
    path.write_text("\n".join(lines) + "\n")


class BulkProcess:
    """`grants bulk …` as a child process; stderr lines kept with their time since start."""

    def __init__(self, settings: Settings, *args: str) -> None:
        self.started = time.monotonic()
        env = {**os.environ, **settings_env(settings), "GRANTS_PROGRESS_INTERVAL_S": "5"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grant_worker.worker", "bulk", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))

    def finish(self) -> tuple[int, float, int]:
        """(exit code, seconds, peak RSS in MiB) once the process has ended."""
        assert self.process.stdout is not None
        self.process.stdout.read()
        _pid, status, usage = os.wait4(self.process.pid, 0)
        seconds = time.monotonic() - self.started
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self._reader.join(timeout=5)
        return self.process.returncode, seconds, usage.ru_maxrss // 1024

    def enqueued_at(self) -> float | None:
        done = [at for at, line in self.lines if line.startswith("enqueued ")]
        return done[-1] if done else None

    def line_starting(self, prefix: str) -> str:
        return next((line for _at, line in self.lines if line.startswith(prefix)), "")


def posts(admin: EmulatorAdmin) -> int:
    return sum(admin.stats()["posts_by_grant_key"].values())


def enqueue_baseline(settings: Settings, rows: int) -> float:
    """Seconds to send `rows` requests one `send_task` each, as a plain Celery producer does."""
    app = create_app(settings)
    started = time.monotonic()
    with app.producer_or_acquire() as producer:
        for n in range(rows):
            request_id = f"baseline-{n}"
            grant = {"client_id": f"svc-{n % SEEDED_CLIENTS:05d}", "audience": APIS[0]}
            app.send_task(
                TASK_NAME,
                kwargs={"request": {"request_id": request_id, "grant": grant}},
                task_id=request_id,
                queue=settings.grants_queue,
                producer=producer,
            )
    seconds = time.monotonic() - started
    app.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8798)
    args = parser.parse_args()
    base_url = f"http://127.0.0.1:{args.port}"
    tag = uuid.uuid4().hex[:8]
    settings = emulator_settings(
        base_url,
        tag,
        grants_concurrency=args.concurrency,
        # The fleet paces itself at the tenant's rate; the tenant's full bucket absorbs jitter.
        grants_rate_limit=args.rate,
        grants_rate_burst=5,
        grants_retry_budget_s=120,
    )
    baseline_settings = settings.model_copy(update={"grants_queue": f"bench-{tag}-baseline"})
    physical_s = args.rows / args.rate
    emulator = start_emulator(args.port, args.rate)
    admin = EmulatorAdmin(base_url)
    workers: list[WorkerProcess] = []
    redis = make_redis(settings)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "grants.csv"
            write_rows(path, args.rows)
            print(
                f"{args.rows} rows, tenant limit {args.rate:g}/s: physical limit {physical_s:.0f} s"
            )

            baseline_s = enqueue_baseline(baseline_settings, args.rows)
            redis.delete(baseline_settings.grants_queue)
            print(f"enqueue baseline (send_task per row): {baseline_s:.2f} s")

            admin.reset()
            workers = [WorkerProcess(settings).start() for _ in range(args.workers)]
            full = BulkProcess(settings, str(path), "--batch-id", f"full-{tag}", "--wait")
            code, seconds, rss_mib = full.finish()
            enqueued = full.enqueued_at() or float("nan")
            stats: dict[str, Any] = admin.stats()
            print(
                f"full run: exit {code}, {seconds:.1f} s = {seconds / physical_s:.3f} x physical "
                f"(goal <= 1.05); check+enqueue {enqueued:.2f} s (goal <= 5; "
                f"{enqueued / baseline_s:.3f} x baseline); CLI peak RSS {rss_mib} MiB; "
                f"POSTs {posts(admin)}, 429s {stats['rate_limited']}"
            )

            admin.reset()
            batch = f"resume-{tag}"
            first = BulkProcess(settings, str(path), "--batch-id", batch, "--wait")
            deadline = time.monotonic() + CAP_S
            while posts(admin) < args.rows // 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            first.process.send_signal(signal.SIGINT)
            first_code, _s, _rss = first.finish()
            at_interrupt = posts(admin)
            for worker in workers:
                worker.stop(timeout_s=60)
            workers = [WorkerProcess(settings).start() for _ in range(args.workers)]
            rerun = BulkProcess(settings, str(path), "--batch-id", batch, "--wait")
            rerun_code, rerun_s, _rss = rerun.finish()
            total_posts = posts(admin)
            print(
                f"interrupted at half: first run exit {first_code} at {at_interrupt} POSTs; "
                f"rerun exit {rerun_code} in {rerun_s:.1f} s "
                f"({rerun.line_starting('resuming:')}); POSTs in all {total_posts} = "
                f"{total_posts / args.rows:.4f} x rows (goal <= 1.01; a rerun without resume: "
                f"2.0000)"
            )
    finally:
        for worker in workers:
            worker.stop(timeout_s=30)
        emulator.terminate()
        emulator.wait(timeout=10)
        delete_deployment(redis, settings)
        for key in redis.scan_iter(f"{settings.grants_queue}*"):
            redis.delete(key)


if __name__ == "__main__":
    main()
