"""Redis Sentinel: a worker and its producer follow the master through a failover.

Real `redis-server` processes on loopback ports: 1 primary, 1 replica, 3 sentinels; `SENTINEL
FAILOVER` in the middle of 300 requests. Every request gets exactly one outcome, no grant is
created twice, and the stall (the longest gap between two outcomes) is measured and reported.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import next_client_id
from tests.local_redis import RedisServer, free_port, redis_server_binary
from tests.reliability.checks import (
    assert_exactly_one_outcome_each,
    grant_duplicates,
    shipped_defaults,
)
from tests.reliability.test_crash_recovery import wait_until

API = "https://api.example.com/"
MASTER = "grants-master"
REQUESTS = 300
STALL_GOAL_S = 30.0
# The failover strikes while most requests are still queued or in flight.
FAILOVER_AFTER = 60


class SentinelServer:
    """`redis-server --sentinel` on a free port, watching `MASTER`."""

    def __init__(self, directory: Path, primary_port: int) -> None:
        self.port = free_port()
        self.directory = directory / f"sentinel-{self.port}"
        self.directory.mkdir()
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 2000\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        log = (self.directory / "sentinel.log").open("ab")
        self.process = subprocess.Popen(
            [redis_server_binary(), str(config), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
        )
        self.client = redis.Redis(port=self.port, decode_responses=True, socket_timeout=2)

    def master_port(self) -> int | None:
        try:
            answer = self.client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        except redis.RedisError:
            return None
        return int(answer[1]) if answer else None

    def knows_everyone(self) -> bool:
        """It sees the replica and the two other sentinels."""
        try:
            state = self.client.sentinel_master(MASTER)
        except redis.RedisError:
            return False
        return int(state["num-other-sentinels"]) >= 2 and int(state["num-slaves"]) >= 1

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _without_record(client: GrantClient, ids: list[str]) -> list[str]:
    records = client.redis.mget([client.keys.outcome_record(request_id) for request_id in ids])
    return [request_id for request_id, record in zip(ids, records, strict=True) if not record]


def _whereabouts(primary: RedisServer, settings: Settings, missing: list[str]) -> str:
    """Where the requests without an outcome are on the new primary: queued, unacknowledged,
    how often delivered."""
    check = redis.Redis(port=primary.port, decode_responses=True)
    queued = " ".join(check.lrange(settings.grants_queue, 0, -1))
    unacked = " ".join(check.hvals(f"{settings.grants_key_prefix}unacked"))
    facts = [
        f"{request_id}: queued={request_id in queued} unacked={request_id in unacked} "
        f"deliveries={check.get(f'{settings.grants_key_prefix}deliveries:{request_id}')}"
        for request_id in missing
    ]
    return f"{len(missing)} without an outcome: " + "; ".join(facts)


@pytest.fixture
def sentinel_deployment(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, list[Any]]]:
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    # Redis's own guard against writes lost in a failover: a primary cut off from its replica
    # (here, the demoted one, until Sentinel turns it into a replica) refuses writes with
    # NOREPLICAS instead of accepting writes that the resync would throw away.
    primary = RedisServer(
        tmp_path / "primary",
        extra_args=["--min-replicas-to-write", "1", "--min-replicas-max-lag", "5"],
    ).start()
    replica = RedisServer(
        tmp_path / "replica", extra_args=["--replicaof", "127.0.0.1", str(primary.port)]
    ).start()
    sentinels = [SentinelServer(tmp_path, primary.port) for _ in range(3)]
    try:
        replica_client = redis.Redis(port=replica.port, decode_responses=True)
        wait_until(
            lambda: replica_client.info("replication").get("master_link_status") == "up",
            30,
            "replica in sync",
        )
        wait_until(
            lambda: all(s.master_port() == primary.port for s in sentinels), 30, "sentinels up"
        )
        # Every sentinel must know the replica and the other sentinels before a failover.
        wait_until(lambda: all(s.knows_everyone() for s in sentinels), 30, "sentinels agree")
        yield primary, replica, sentinels
    finally:
        for sentinel in sentinels:
            sentinel.stop()
        replica.stop()
        primary.stop()


@pytest.mark.slow
@pytest.mark.timeout(240)
# A failover can strike between kombu's BRPOP and the record of the message it took, which
# would lose it: workers move each message into a list of their own instead
# (`worker.process.broker.transport`).
def test_a_sentinel_failover_in_the_middle_of_300_requests_loses_and_doubles_nothing(
    sentinel_deployment: tuple[RedisServer, RedisServer, list[Any]],
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    figures: Callable[..., None],
) -> None:
    _primary, replica, sentinels = sentinel_deployment
    url = ";".join(f"sentinel://127.0.0.1:{s.port}" for s in sentinels)
    # Default settings: the retry budget, the timeouts, the restore interval and so the
    # visibility timeout (~90 s) are what a deployment runs with; a test that shortened them
    # would hide a failover that waits for the visibility timeout.
    settings = settings_factory(redis_url=url, grants_sentinel_master=MASTER, **shipped_defaults())
    emulator.admin.set_faults(latency_ms=20)
    worker = start_worker(settings)
    requests = [
        {"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(REQUESTS)
    ]
    with GrantClient(settings) as client:
        ids = client.submit_many(requests)
        wait_until(
            lambda: client.redis.xlen(client.keys.results) >= FAILOVER_AFTER, 60, "some done"
        )
        done_before = client.redis.xlen(client.keys.results)
        failover_at = time.time()
        sentinels[0].client.execute_command("SENTINEL", "FAILOVER", MASTER)
        wait_until(lambda: sentinels[0].master_port() == replica.port, 30, "the replica promoted")
        promoted_s = time.time() - failover_at
        # By the records, not by following the results stream: entries a demoted primary took
        # before Sentinel turned it into a replica are discarded by the resync, and a reader
        # that followed them would have moved its cursor past outcomes written meanwhile.
        try:
            wait_until(lambda: not _without_record(client, ids), 150, "every outcome recorded")
        except AssertionError as exc:
            raise AssertionError(
                _whereabouts(replica, settings, _without_record(client, ids))
            ) from exc
        all_done_s = time.time() - failover_at
        on_new_primary = redis.Redis(port=replica.port, decode_responses=True)
        outcomes = assert_exactly_one_outcome_each(on_new_primary, client.keys.results, ids)
        stamps = sorted(
            int(entry_id.split("-")[0]) / 1000
            for entry_id, _ in on_new_primary.xrange(client.keys.results)
        )
    stall_s = max(b - a for a, b in itertools.pairwise(stamps))
    grants = emulator.admin.grants()
    # Reported before the checks, so that a failing run still shows its figures.
    figures(
        requests=REQUESTS,
        outcomes_before_failover=done_before,
        replica_promoted_after_s=round(promoted_s, 1),
        all_done_after_failover_s=round(all_done_s, 1),
        stall_s=round(stall_s, 1),
        stall_goal_s=STALL_GOAL_S,
        within_goal=stall_s <= STALL_GOAL_S,
        grants=len(grants),
        duplicates=len(grant_duplicates(grants)),
    )
    assert worker.alive()
    assert "Unrecoverable error" not in worker.log()
    assert {o.status for o in outcomes.values()} <= {"created", "exists"}
    assert len(grants) == REQUESTS
    assert grant_duplicates(grants) == {}
    assert stall_s <= STALL_GOAL_S, f"requests waited {stall_s:.1f} s with no new outcome"
