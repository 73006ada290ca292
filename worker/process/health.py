"""The worker's HTTP port: `/metrics`, `/healthz` (liveness) and `/readyz` (readiness).

- `/healthz` answers 200 while the consumer's event loop is alive: its timer ticks
  (`note_consumer_loop`, fired by the loop itself), or every thread is busy (a full pool reads
  no messages, which is not a fault). Restart the process when it fails. The other way a
  consumer dies, a loop that turns but no longer reads the queue, is the watchdog's
  (`worker.process.watchdog`): it ends the process (exit 70), which fails the probe too.
- `/readyz` answers 200 while every registered readiness check passes: Redis reachable and
  writable, the broker taking this worker's writes, the intake bridge alive and the fleet's
  breaker closed (all registered by `worker.process.startup.prepare_worker`). Take the worker out of
  service, do not restart it, when it fails: the cause is outside the process.
- Anything else is 404.

Other modules add a readiness check with `register_readiness_check(name, check)`, where
`check()` returns None when ready or a short reason (no secrets) when not.

`GRANTS_METRICS_PORT` with `GRANTS_METRICS_PORT_COUNT` > 1 lets several workers share a host:
each takes the first free port of the range. No free port is a configuration error (exit 2).
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    disable_created_metrics,
    generate_latest,
)

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], str | None]

# The loop's timer ticks every LOOP_TICK_S; missing it this long means the loop is stuck.
LOOP_TICK_S = 5.0
LOOP_STALE_S = 60.0


class PortUnavailable(Exception):
    """None of the configured metrics ports could be bound."""


@dataclass
class Liveness:
    """What `/healthz` decides on; updated by the consumer loop."""

    capacity: int = 1
    last_loop_tick: float | None = None
    busy: Callable[[], int] = lambda: 0

    def problem(self, now: float | None = None) -> str | None:
        now = time.monotonic() if now is None else now
        if self.last_loop_tick is None:
            return "consumer loop not started"
        quiet_s = now - self.last_loop_tick
        if quiet_s > LOOP_STALE_S and self.busy() < self.capacity:
            return f"consumer loop silent for {quiet_s:.0f} s with free threads"
        return None


LIVENESS = Liveness()
_checks: dict[str, ReadinessCheck] = {}
_checks_lock = threading.Lock()


def note_consumer_loop() -> None:
    """Called from the consumer's event loop (a timer of its own): the loop turns."""
    LIVENESS.last_loop_tick = time.monotonic()


def register_readiness_check(name: str, check: ReadinessCheck) -> None:
    """Add (or replace) the readiness check `name`; `check()` → None (ready) or a reason."""
    with _checks_lock:
        _checks[name] = check


def unregister_readiness_check(name: str) -> None:
    with _checks_lock:
        _checks.pop(name, None)


def readiness() -> dict[str, str | None]:
    """Each registered check's result: None when ready, else the reason."""
    with _checks_lock:
        checks = dict(_checks)
    results: dict[str, str | None] = {}
    for name, check in sorted(checks.items()):
        try:
            results[name] = check()
        except Exception as exc:  # a check that cannot decide says not ready, with why
            results[name] = f"check failed: {type(exc).__name__}"
    return results


class _Handler(BaseHTTPRequestHandler):
    server_version = "grant-worker"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            problem = LIVENESS.problem()
            tick = LIVENESS.last_loop_tick
            self._send_json(
                200 if problem is None else 503,
                {
                    "status": "ok" if problem is None else "fail",
                    "problem": problem,
                    "loop_quiet_s": None if tick is None else round(time.monotonic() - tick, 1),
                },
            )
        elif path == "/readyz":
            checks = readiness()
            ready = all(result is None for result in checks.values())
            self._send_json(
                200 if ready else 503,
                {
                    "status": "ok" if ready else "fail",
                    "checks": {name: result or "ok" for name, result in checks.items()},
                },
            )
        else:
            self._send_json(
                404, {"status": "not found", "paths": ["/metrics", "/healthz", "/readyz"]}
            )

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes every few seconds would drown the worker's own lines.
        log.debug("health: " + format, *args)


def serve_health(port: int, count: int = 1, addr: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Bind the first free port of `port … port+count-1` and serve from a daemon thread.

    Raises `PortUnavailable` naming the ports when none is free.
    """
    # prometheus-client's `_created` series would read as counts next to `status="created"`;
    # nothing here needs a counter's creation time (rate() copes with restarts).
    disable_created_metrics()
    last_error: OSError | None = None
    for candidate in range(port, port + count):
        try:
            server = ThreadingHTTPServer((addr, candidate), _Handler)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            last_error = exc
            continue
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
        log.info("metrics and health on port %d (/metrics, /healthz, /readyz)", candidate)
        return server
    span = f"{port}" if count == 1 else f"{port}-{port + count - 1}"
    reason = last_error.strerror if last_error else "no port"
    raise PortUnavailable(
        f"GRANTS_METRICS_PORT: port {span} is taken ({reason}); another worker on this host "
        "uses it. Give each worker its own port, or a range with GRANTS_METRICS_PORT_COUNT"
    )
