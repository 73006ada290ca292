"""What several benchmarks set up the same way: a free loopback port, a Redis of the run's own,
and worker settings against the emulator under a queue and key prefix of the run's own.

Not a benchmark; the scripts beside it import it (run as `.venv/bin/python bench/NAME.py`, the
script's own folder is on the import path).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from grant_worker.config.settings import Settings

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_redis() -> Iterator[int]:
    """A redis-server of this run's own on a free port, persisting nothing; yields its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH")
    port = free_port()
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def emulator_settings(
    base_url: str, tag: str, redis_url: str = REDIS_URL, **options: Any
) -> Settings:
    """A worker's settings against the emulator at `base_url`, on the queue and key prefix
    `bench-{tag}` (so a run never touches another deployment's keys); `options` add to them."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=redis_url,
        auth0_domain=base_url,
        auth0_client_id="grant-worker",
        auth0_client_secret="emulator-secret",
        grants_key_prefix=f"bench-{tag}:",
        grants_queue=f"bench-{tag}",
        **options,
    )
