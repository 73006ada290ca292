"""What one request costs Redis, in round trips counted on the wire and in commands counted by
Redis itself.

A Redis a zone away turns every sequential round trip into latency, so the handler's story is
held to a count: the pace's lesson from an answer rides with the next round trip instead of
making its own (`tasks.ride_along`), and the POST's slot makes the sent marker.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import Outcome
from grant_worker.tasks.outcomes.recorder import OutcomeRecorder
from grant_worker.tasks.ride_along import RideAlong, run_script
from grant_worker.tasks.scripts import ScriptPipeline
from grant_worker.tasks.wiring import make_handler
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import make_settings, next_client_id
from tests.local_redis import RedisServer

API = "https://api.example.com/"


class CountingConnection(redis.Connection):
    """A real connection that counts what it sends: one `send_packed_command` is one write of a
    command or a pipeline, which the caller then waits on (a round trip)."""

    sent: list[list[bytes]] = []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent.append(
            [command] if isinstance(command, bytes | str) else list(command)
        )
        super().send_packed_command(command, check_health)


def counting_client(redis_url: str) -> redis.Redis:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    return redis.Redis(connection_pool=pool)


def names(sent: list[list[bytes]]) -> list[str]:
    """The command names in each round trip of a request, as sent (the dashboard's counts of
    calls, flushed by a thread of their own now and then, and connection greetings left out)."""
    trips = []
    for chunks in sent:
        text = b"".join(c if isinstance(c, bytes) else bytes(c) for c in chunks)
        words = text.split(b"\r\n")
        # RESP arrays: *N, then $len / word pairs; the first word of each array is its name.
        found = [words[i + 2].decode() for i, w in enumerate(words) if w.startswith(b"*")]
        # A new connection's greeting (HELLO, CLIENT SETINFO) is not the request's.
        if set(found) <= {"HINCRBY", "EXPIRE"} or found[0] in ("HELLO", "CLIENT", "SELECT"):
            continue
        trips.append(" ".join(found))
    return trips


@pytest.fixture
def counted(redis_url: str, emulator: Any, key_prefix: str, queue_name: str) -> Any:
    settings = make_settings(
        emulator, key_prefix, queue_name, redis_url=redis_url, grants_rate_limit="auto"
    )
    client = counting_client(redis_url)
    handler = make_handler(settings, client)
    # Token and pace state first: what is counted is a request of a running worker.
    handler.handle(
        {"grant": {"client_id": next_client_id(), "audience": API}}, fallback_id="warm-up"
    )
    CountingConnection.sent.clear()
    yield handler
    client.close()


def test_a_created_grant_costs_three_round_trips_from_admission_to_record(counted: Any) -> None:
    outcome = counted.handle(
        {
            "request_id": f"rt-{uuid.uuid4().hex[:8]}",
            "grant": {"client_id": next_client_id(), "audience": API},
        },
        fallback_id="rt-task",
    )
    assert outcome.status == "created"
    trips = names(CountingConnection.sent)
    # Admission, the pace slot (which makes the sent marker too), and the record carrying the
    # pace's lesson from the 201: nothing else waits on Redis.
    assert len(trips) == 3, trips
    assert trips[-1].split() == ["EVALSHA", "EVALSHA"], trips


def test_queued_writes_go_ahead_of_the_step_they_ride_with_in_one_round_trip(
    redis_url: str, key_prefix: str
) -> None:
    client = counting_client(redis_url)
    key = f"{key_prefix}ride"
    later = RideAlong(client)
    seen: list[Any] = []
    later.add("first", lambda pipe: pipe.command("RPUSH", key, "first"), seen.append)
    later.add("second", lambda pipe: pipe.command("RPUSH", key, "second"), seen.append)
    CountingConnection.sent.clear()
    (length,) = later.send_with(lambda pipe: pipe.command("RPUSH", key, "step"))
    assert names(CountingConnection.sent) == ["RPUSH RPUSH RPUSH"]
    assert client.lrange(key, 0, -1) == [b"first", b"second", b"step"]
    assert (seen, length) == ([1, 2], 3)
    assert not later  # sent: nothing is sent twice
    later.flush()
    assert client.llen(key) == 3


def test_a_refused_ride_along_write_never_undoes_the_step_it_rode_with(
    redis_client: redis.Redis, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = f"{key_prefix}a-string"
    redis_client.set(wrong, "x")
    later = RideAlong(redis_client)
    later.add("a lesson", lambda pipe: pipe.command("HSET", wrong, "f", "v"))
    (written,) = later.send_with(lambda pipe: pipe.command("SET", f"{key_prefix}step", "done"))
    assert written is True or written == b"OK"
    assert redis_client.get(f"{key_prefix}step") == "done"
    assert "a lesson not written" in caplog.text


def test_a_failing_request_sends_what_it_queued_without_hiding_its_own_error(
    key_prefix: str,
) -> None:
    # Nothing listens on port 1; no retries, so that the refusal comes at once.
    gone = redis.Redis(port=1, socket_connect_timeout=0.2, retry=None)
    later = RideAlong(gone)
    later.add("a lesson", lambda pipe: pipe.command("SET", f"{key_prefix}x", "1"))
    later.flush(quiet=True)  # logged, not raised: the request's own error is the one to see
    later.add("a lesson", lambda pipe: pipe.command("SET", f"{key_prefix}x", "1"))
    with pytest.raises(redis.ConnectionError):
        later.flush()


def test_a_script_redis_forgot_runs_once_in_a_pipeline_without_asking_script_exists(
    redis_url: str, key_prefix: str
) -> None:
    client = counting_client(redis_url)
    key = f"{key_prefix}counted"
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    client.script_flush()  # a restart or a failover: Redis knows no script
    CountingConnection.sent.clear()
    pipe = ScriptPipeline(client)
    pipe.script(script, [key], [])
    pipe.command("GET", key, after_scripts=True)
    pipe.command("GET", key)
    count, after, before = pipe.execute()
    # The script ran exactly once, reloaded; what must follow it ran again after it.
    assert (count, after, before) == (1, b"1", None)
    assert names(CountingConnection.sent) == ["EVALSHA GET GET", "SCRIPT", "EVALSHA GET"]
    assert not any(b"EXISTS" in b"".join(chunks) for chunks in CountingConnection.sent)
    assert run_script(script, [key], [], later=RideAlong(client)) == 2


def test_the_record_behind_sentinel_asks_no_script_exists_either(
    redis_url: str, key_prefix: str
) -> None:
    # Behind Sentinel the record is followed by a WAIT on the same connection: a pipeline, which
    # must not cost a SCRIPT EXISTS (a round trip and a command) before every outcome.
    client = counting_client(redis_url)
    recorder = OutcomeRecorder(
        client,
        Keys(key_prefix),
        record_ttl_s=60,
        stream_maxlen=0,
        min_replicas=1,
        replica_wait_ms=10,
    )
    outcome = Outcome(
        request_id=f"sentinel-{uuid.uuid4().hex[:8]}",
        status="created",
        attempts=1,
        received_at="2026-12-05T00:00:00Z",
        finished_at="2026-12-05T00:00:01Z",
    )
    with pytest.raises(redis.ConnectionError, match="replica"):
        recorder.record(outcome)  # this Redis has no replica: not acknowledged
    CountingConnection.sent.clear()
    with pytest.raises(redis.ConnectionError, match="replica"):
        recorder.record(outcome.model_copy(update={"request_id": outcome.request_id + "-2"}))
    assert names(CountingConnection.sent) == ["EVALSHA WAIT"]


def test_a_grant_costs_at_most_32_redis_commands_through_a_real_worker(
    tmp_path: Path, emulator: Any, queue_name: str
) -> None:
    # Every command Redis ran, those inside scripts included (`INFO commandstats`), on a Redis
    # of this test's own, while a real worker at default pacing creates 300 grants: the
    # producer's pushes and the reads of the outcomes count too, as they cost Redis as much.
    emulator.admin.set_rate_limit(1_000_000, 1_000_000)
    server = RedisServer(tmp_path).start()
    worker = None
    try:
        settings = make_settings(
            emulator, f"cost-{uuid.uuid4().hex[:8]}:", queue_name, redis_url=server.url,
            grants_rate_limit="auto", grants_concurrency=8,
        )  # fmt: skip
        worker = WorkerProcess(settings, log_dir=tmp_path).start()
        admin = redis.Redis.from_url(server.url)
        requests = [{"grant": {"client_id": next_client_id(), "audience": API}} for _ in range(300)]
        with GrantClient(settings) as client:
            admin.config_resetstat()
            outcomes = list(client.wait_many(client.submit_many(requests), timeout_s=60))
            stats: dict[str, Any] = admin.info("commandstats")
        assert [o.status for o in outcomes] == ["created"] * 300
        per_grant = sum(int(s["calls"]) for s in stats.values()) / 300
        assert per_grant <= 32, sorted(stats.items(), key=lambda s: -int(s[1]["calls"]))[:8]
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
