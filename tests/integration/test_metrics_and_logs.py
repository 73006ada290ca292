"""What a worker's /metrics and log lines look like to Prometheus, log stores and Flower.

Real worker processes on the shared Redis and the emulator, scraped over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import requests
from celery import Celery

from grant_worker.config.settings import Settings
from grant_worker.tasks.celery_base import base_config
from grant_worker.tasks.fleet import read_beats
from grant_worker.tasks.keys import Keys
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.integration.conftest import next_client_id
from tests.local_redis import free_port

API = "https://api.example.com/"
WAIT_S = 30.0
FLEET_GAUGES = (
    "grants_queue_depth",
    "grants_dead_letters",
    "grants_intake_pending",
    "grants_intake_claimed",
)


def scrape(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def samples(text: str) -> dict[str, float]:
    """`name{labels}` → value, for every sample line of a scrape."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def wait_until(check: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def submit_and_wait(settings: Settings) -> str:
    with GrantClient(settings) as client:
        request_id = client.submit(
            {"grant": {"client_id": next_client_id(), "audience": API, "scope": ["read:x"]}}
        )
        return client.wait(request_id, timeout_s=WAIT_S).status


def test_counters_carry_no_created_series_and_timestamps_are_named_as_such(
    settings_factory: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    port = free_port()
    settings = settings_factory(grants_metrics_port=port)
    start_worker(settings)
    assert submit_and_wait(settings) == "created"
    text = scrape(port)
    assert 'grants_outcomes_total{code="",status="created"} 1.0' in text
    # prometheus-client's creation times would read as counts next to status="created".
    assert not [line for line in text.splitlines() if "_created" in line.split("{")[0]]
    assert "grants_fleet_pause_until_timestamp_seconds" in text
    assert "grants_fleet_pause_until_seconds" not in text


def test_rejections_by_the_intake_bridge_are_counted_as_outcomes(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    port = free_port()
    settings = settings_factory(grants_metrics_port=port)
    start_worker(settings)
    keys = Keys(settings.grants_key_prefix)
    redis_client.xadd(keys.intake, {"request": "{not json"})
    redis_client.xadd(keys.intake, {"request": json.dumps({"grant": {"audience": 7}})})
    wait_until(lambda: redis_client.xlen(keys.results) >= 2)
    rejected = 'grants_outcomes_total{code="invalid_request",status="rejected"}'
    wait_until(lambda: samples(scrape(port)).get(rejected) == 2.0, timeout_s=5)


def test_fleet_wide_gauges_are_served_by_one_worker_and_another_takes_over(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    redis_client: redis.Redis,
) -> None:
    ports = [free_port(), free_port()]
    keys_of: list[Keys] = []
    workers = []
    for n, port in enumerate(ports):
        settings = settings_factory(
            grants_metrics_port=port,
            grants_heartbeat_interval_s=0.5,
            grants_heartbeat_ttl_s=2.0,
        )
        keys_of.append(Keys(settings.grants_key_prefix))
        workers.append(start_worker(settings, hostname=f"fleet-{n}@test"))
    keys = keys_of[0]
    redis_client.xadd(keys.dead, {"outcome": "{}"})
    wait_until(lambda: sum(b.current for b in read_beats(redis_client, keys)) == 2)

    scrapes = [samples(scrape(port)) for port in ports]
    reporters = [n for n, found in enumerate(scrapes) if found.get("grants_fleet_reporter") == 1]
    assert len(reporters) == 1, scrapes
    (reporter,) = reporters
    other = 1 - reporter
    for gauge in FLEET_GAUGES:
        assert gauge in scrapes[reporter]
        assert gauge not in scrapes[other]
    # A sum over the fleet counts the dead letter once.
    assert sum(found.get("grants_dead_letters", 0) for found in scrapes) == 1
    for found in scrapes:  # each worker's own gauges stay on every worker
        assert "grants_in_flight" in found and "grants_capacity" in found

    workers[reporter].stop(timeout_s=20)
    wait_until(lambda: samples(scrape(ports[other])).get("grants_fleet_reporter") == 1.0)
    assert samples(scrape(ports[other]))["grants_dead_letters"] == 1


def test_json_logs_are_json_on_every_line_with_utc_iso_times(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(
        settings,
        # A misspelt setting: its warning comes before the settings (and logging) are set up.
        extra_env={"GRANTS_LOG_FORMAT": "json", "GRANTS_CONCURENCY": "2"},
    )
    assert submit_and_wait(settings) == "created"
    worker.stop(timeout_s=20)
    output = worker.log()
    lines = [line for line in output.splitlines() if line.strip()]
    parsed: list[dict[str, Any]] = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not JSON: {line!r}\n{output}") from None
    iso_utc = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|\+00:00)$")
    assert all(iso_utc.match(entry["time"]) for entry in parsed), parsed[0]["time"]
    messages = [entry["message"] for entry in parsed]
    assert any("unknown setting GRANTS_CONCURENCY" in m for m in messages), messages
    assert any("Warm shutdown" in m for m in messages), messages
    assert settings.auth0_client_secret is not None
    assert settings.auth0_client_secret.get_secret_value() not in output


def test_task_events_for_flower_are_sent_when_turned_on(
    settings_factory: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = settings_factory(grants_task_events=True)
    start_worker(settings)
    monitor = Celery("monitor", set_as_current=False)
    monitor.config_from_object(base_config(settings))
    seen: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with monitor.connection_for_read() as connection:
            receiver = monitor.events.Receiver(
                connection, handlers={"*": lambda event: seen.append(event["type"])}
            )
            ready.set()
            with contextlib.suppress(TimeoutError):
                receiver.capture(limit=None, timeout=WAIT_S, wakeup=False)

    threading.Thread(target=listen, daemon=True).start()
    assert ready.wait(10)
    time.sleep(1)  # the receiver's subscription is in place
    assert submit_and_wait(settings) == "created"
    wait_until(lambda: "task-succeeded" in seen, timeout_s=10)
    assert "task-received" in seen
