"""`grants demo` runs the whole pipeline and leaves nothing behind in Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from tests.local_redis import RedisServer


def test_the_demo_succeeds_and_leaves_no_key_behind(tmp_path: Path) -> None:
    # A Redis of its own, empty at the start, so that "nothing behind" means no key at all,
    # kombu's shared `_kombu.binding_deadlines` included.
    server = RedisServer(tmp_path).start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "grant_worker.worker", "demo"],
            env={**os.environ, "REDIS_URL": server.url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "all outcomes as expected" in done.stdout
        assert sorted(redis.Redis(port=server.port, decode_responses=True).keys("*")) == []
    finally:
        server.stop()
