"""`grants status` and `grants doctor` against a real Redis, a real worker and the emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import grants, next_client_id
from tests.local_redis import RedisServer

API = "https://api.example.com/"


def test_status_shows_queue_workers_and_dead_letters_by_code(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    settings = settings_factory(grants_concurrency=3, grants_stall_after_s=4.0)
    start_worker(settings, hostname="status-a@%h")
    with GrantClient(settings) as client:
        ids = client.submit_many(
            [
                {"grant": {"client_id": next_client_id(), "audience": API}},
                {"grant": {"client_id": next_client_id(), "audience": "https://nowhere.example/"}},
            ]
        )
        for request_id in ids:
            client.wait(request_id, timeout_s=30)
    deadline = time.monotonic() + 10
    while True:  # the watchdog beats every second here (GRANTS_STALL_AFTER_S / 4)
        done = grants(settings, "status", "--json")
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)
        if status["workers"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status["queue"] == settings.grants_queue
    assert status["queue_depth"] == 0
    (worker,) = status["workers"]
    assert worker["hostname"].startswith("status-a@") and worker["capacity"] == 3
    assert status["dead_letters"] == 1 and status["dead_by_code"] == {"not_found": 1}
    assert status["finished_per_s"] > 0
    assert status["flow"]["rate_limit"] == 0  # GRANTS_RATE_LIMIT=0 in the tests

    screen = grants(settings, "status", GRANTS_CONCURENCY="2")
    assert screen.returncode == 0
    assert "GRANTS_CONCURENCY is ignored; did you mean GRANTS_CONCURRENCY?" in screen.stderr
    assert "dead letters 1: not_found 1" in screen.stdout
    assert "status-a@" in screen.stdout


def test_doctor_passes_a_well_set_up_deployment_and_fails_an_evicting_redis(
    settings_factory: Callable[..., Settings], tmp_path: Path, emulator: Any
) -> None:
    server = RedisServer(tmp_path, extra_args=["--maxmemory", "100mb"]).start()
    try:
        settings = settings_factory(redis_url=server.url)
        emulator.admin.set_rate_limit(50, 50)  # so that it sends x-ratelimit-* headers
        done = grants(settings, "doctor", "--json", GRANTS_CONCURENCY="2")
        checks = {(c["area"], c["name"]): c for c in map(json.loads, done.stdout.splitlines())}
        assert done.returncode == 0, done.stdout
        assert checks[("config", "unknown variable")]["verdict"] == "warn"
        assert "did you mean GRANTS_CONCURRENCY" in checks[("config", "unknown variable")]["detail"]
        for key in [
            ("redis", "version"),
            ("redis", "appendonly"),
            ("redis", "maxmemory-policy"),
            ("redis", "maxmemory"),
            ("redis", "acl"),
            ("clock", "skew"),
            ("tenant", "token"),
            ("tenant", "scopes"),
            ("tenant", "api"),
            ("tenant", "rate-limit headers"),
        ]:
            assert checks[key]["verdict"] == "pass", checks[key]

        import redis

        redis.Redis(port=server.port).config_set("maxmemory-policy", "allkeys-lru")
        done = grants(settings, "doctor")
        assert done.returncode == 1
        assert "FAIL redis/maxmemory-policy: allkeys-lru" in done.stdout
        assert "fix: CONFIG SET maxmemory-policy noeviction" in done.stdout
    finally:
        server.stop()


def test_doctor_names_the_acl_rights_a_restricted_user_lacks(
    settings_factory: Callable[..., Settings], tmp_path: Path, emulator: Any
) -> None:
    server = RedisServer(tmp_path).start()
    try:
        import redis

        settings = settings_factory(redis_url=f"redis://narrow:pw@127.0.0.1:{server.port}/0")
        # Rights on the prefix only: the queue and kombu's keys are missing.
        redis.Redis(port=server.port).acl_setuser(
            "narrow",
            enabled=True,
            passwords=["+pw"],
            keys=[f"{settings.grants_key_prefix}*"],
            commands=["+@all"],
        )
        done = grants(settings, "doctor", "--json")
        checks = {(c["area"], c["name"]): c for c in map(json.loads, done.stdout.splitlines())}
        acl = checks[("redis", "acl")]
        assert done.returncode == 1
        assert acl["verdict"] == "fail"
        assert f"LPUSH {settings.grants_queue}" in acl["detail"]
        assert "pw" not in done.stdout
    finally:
        server.stop()
