"""What every worker does before it consumes, whichever command started it.

`grants worker` and `celery -A grant_worker.worker.app worker` run the same Celery worker: the
pool, its size and the queue come from the app's configuration (`worker.process.app.celery_config`),
and the checks and services below hang on Celery's own hooks, so neither command can skip them:

- `celeryd_init` (before the banner): Celery's `--concurrency` carried into the settings and
  queue flags that would leave GRANTS_QUEUE refused (`worker.process.flags`), logging in the
  configured format (`Settings` itself
  has warned about unknown `GRANTS_*` variables), the Auth0 settings required, Redis reachable
  with the given credentials (a refused password exits 2 at once; an unreachable Redis is
  waited for, with the reason logged), the health/metrics port bound (taken → exit 2),
  gauges and readiness checks registered.
- `setup_logging`: Celery's own lines go through the same handler.
- `task_prerun` / `task_postrun`: the request id (and batch) put on every line a task logs.
- the bootsteps (`worker.process.steps`, added by `worker.process.app.create_app`): the broker
  guard, the intake bridge, the watchdog, recovery, the breaker watch, and `LoopTickStep`, whose
  timer on the consumer's event loop `/healthz` watches.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, NoReturn
from urllib.parse import urlsplit

import redis
from celery import signals
from celery.worker import state

from grant_worker.config.settings import Settings
from grant_worker.tasks import events
from grant_worker.tasks.broker_faults import classify
from grant_worker.tasks.connections import make_redis
from grant_worker.tasks.flow.breaker import read_breaker
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.inspection import TASK_NAME
from grant_worker.worker import logs
from grant_worker.worker.exit_codes import fail_usage
from grant_worker.worker.process import health
from grant_worker.worker.process.breaker_watch import check_tenant_at_start
from grant_worker.worker.process.broker.monitor import broker_state
from grant_worker.worker.process.flags import FlagRefused, apply_worker_flags
from grant_worker.worker.process.gauges import QueueGauges, register_gauges

log = logging.getLogger(__name__)

REDIS_RETRY_S = 2.0
BRIDGE_THREAD_NAME = "intake-bridge"


def exit_config_error(message: str) -> NoReturn:
    """Exit 2 with `error: configuration: …` (`worker.exit_codes.fail_usage`)."""
    fail_usage(f"configuration: {message}")


def wait_for_redis(client: redis.Redis, *, retry_s: float = REDIS_RETRY_S) -> None:
    """Return once Redis answers PING; exit 2 at once when it refuses our credentials."""
    while True:
        try:
            client.ping()
            return
        except redis.RedisError as exc:
            if classify(exc) == "auth":
                exit_config_error(
                    f"REDIS_URL: Redis refused the credentials ({type(exc).__name__}); "
                    "check the user and password in REDIS_URL"
                )
            events.log_broker_fault(f"Redis not reachable; retrying in {retry_s:.0f} s", exc)
            time.sleep(retry_s)


def redis_writable(client: redis.Redis, keys: Keys, hostname: str) -> str | None:
    """Readiness: Redis answers and takes a write (a full Redis under noeviction refuses)."""
    try:
        client.set(keys.readiness_probe(hostname), "1", px=10_000)
    except redis.RedisError as exc:
        return f"Redis: {type(exc).__name__}"
    return None


def bridge_alive() -> str | None:
    """Readiness: the intake bridge's thread runs (started by `IntakeBridgeStep`)."""
    alive = any(
        thread.name == BRIDGE_THREAD_NAME and thread.is_alive() for thread in threading.enumerate()
    )
    return None if alive else "intake bridge not running"


def broker_ready() -> str | None:
    """Not ready during a broker fault (OOM, READONLY, LOADING, lost connection)."""
    return None if broker_state.ready else "Redis does not take this worker's writes"


def breaker_closed(client: redis.Redis, keys: Keys) -> str | None:
    """Not ready while the fleet's breaker is open: the worker takes no work then."""
    breaker = read_breaker(client, keys)
    return f"the fleet's breaker is open ({breaker.cause})" if breaker.is_open else None


def prepare_worker(settings: Settings, hostname: str, celery_loglevel: Any) -> logs.LogFormat:
    """Everything before consuming; exits 2 on a configuration error. Returns the log format."""
    level = _effective_level(settings.grants_log_level, celery_loglevel)
    log_format = logs.configure_logging(settings.grants_log_format, level)
    logs.leave_out_success_lines(level)
    try:
        settings.require_auth0()
    except ValueError as exc:
        exit_config_error(str(exc))
    client = make_redis(settings)
    wait_for_redis(client)
    # Refused credentials exit 2 here; an unreachable tenant starts with the breaker open.
    check_tenant_at_start(settings, client)
    keys = Keys(settings.grants_key_prefix)
    health.LIVENESS.capacity = settings.grants_concurrency
    health.LIVENESS.busy = lambda: len(state.active_requests)
    health.register_readiness_check("redis", lambda: redis_writable(client, keys, hostname))
    health.register_readiness_check("bridge", bridge_alive)
    health.register_readiness_check("broker", broker_ready)
    health.register_readiness_check("breaker", lambda: breaker_closed(client, keys))
    register_gauges(
        QueueGauges(
            client,
            keys,
            settings.grants_queue,
            in_flight=lambda: len(state.active_requests),
            capacity=settings.grants_concurrency,
        )
    )
    if settings.grants_metrics_port:
        try:
            health.serve_health(settings.grants_metrics_port, settings.grants_metrics_port_count)
        except health.PortUnavailable as exc:
            exit_config_error(str(exc))
    return log_format


def log_start(settings: Settings, hostname: str) -> None:
    """What Celery's banner says, as one log event (the banner is not JSON)."""
    log.info(
        "worker %s starting: %d threads on queue %s, broker %s",
        hostname,
        settings.grants_concurrency,
        settings.grants_queue,
        ";".join(_shown(url) for url in settings.redis_url.get_secret_value().split(";")),
        extra={
            "event": "worker_start",
            "node": hostname,
            "pool": "threads",
            "concurrency": settings.grants_concurrency,
            "queue": settings.grants_queue,
            "key_prefix": settings.grants_key_prefix,
            "metrics_port": settings.grants_metrics_port,
        },
    )


def _shown(url: str) -> str:
    """One URL of REDIS_URL without its credentials (Sentinel's form is several, `;`-joined)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _effective_level(ours: str, celery_level: Any) -> int:
    """The more verbose of GRANTS_LOG_LEVEL and Celery's --loglevel (default WARNING)."""
    levels = [logging.getLevelName(ours)]
    if isinstance(celery_level, int):
        levels.append(celery_level)
    elif isinstance(celery_level, str) and isinstance(logging.getLevelName(celery_level), int):
        levels.append(logging.getLevelName(celery_level.upper()))
    return min(level for level in levels if isinstance(level, int))


# -- Celery hooks ---------------------------------------------------------------------------


def _on_celeryd_init(
    sender: Any = None, instance: Any = None, options: Any = None, **_: Any
) -> None:
    settings = getattr(getattr(instance, "app", None), "grants_settings", None)
    if not isinstance(settings, Settings):
        return  # another app's worker in this process: not ours to configure
    # Celery configures logging after this hook; while a receiver is connected, it leaves the
    # root logger to us. Connected only now, so applications that merely import the client
    # keep their own Celery logging.
    signals.setup_logging.connect(_on_setup_logging, weak=False, dispatch_uid="grants-logging")
    global _our_worker
    _our_worker = True
    try:
        apply_worker_flags(settings, options or {})
    except FlagRefused as exc:
        exit_config_error(str(exc))
    log_format = prepare_worker(settings, str(sender), (options or {}).get("loglevel"))
    if log_format == "json" and instance is not None:
        # Celery prints its banner as art on stdout; in JSON mode it becomes one event.
        instance.quiet = True
        log_start(settings, str(sender))
        say_as_log_lines()


def say_as_log_lines() -> None:
    """Celery's worker writes its shutdown notices ("worker: Warm shutdown (MainProcess)",
    "Hitting Ctrl+C again …") straight to the stdout/stderr file descriptors with `safe_say`,
    around any logging; in JSON mode each becomes a log line of the same format instead.

    `celery.apps.worker` calls its module-level `safe_say` by name, so replacing that one name
    reaches every notice (tests/integration/test_json_logs.py fails when a release changes it).
    """
    import celery.apps.worker as celery_worker

    celery_worker.safe_say = _say


def _say(msg: str, f: Any = None) -> None:
    # Called from signal handlers, as Celery's own was; the `worker_stop` event is logged
    # from the same place.
    logging.getLogger("celery.apps.worker").info(msg.strip())


def _on_setup_logging(**_: Any) -> None:
    """Celery's lines go through the handler `prepare_worker` installed."""


def _on_shutting_down(sig: Any = None, how: Any = None, exitcode: Any = None, **_: Any) -> None:
    if not _our_worker:
        return
    # Celery also prints "worker: Warm shutdown (MainProcess)" straight to stdout; this is the
    # same news as a log event.
    log.info(
        "worker shutting down (%s, signal %s)",
        how,
        sig,
        extra={"event": "worker_stop", "how": how, "signal": sig, "exitcode": exitcode},
    )


def _on_task_prerun(sender: Any = None, task_id: Any = None, kwargs: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) != TASK_NAME:
        return
    request = (kwargs or {}).get("request")
    fields = request if isinstance(request, dict) else {}
    request_id = fields.get("request_id") if isinstance(fields.get("request_id"), str) else None
    batch_id = fields.get("batch_id") if isinstance(fields.get("batch_id"), str) else None
    events.enter_request(request_id or (str(task_id) if task_id else None), batch_id)


def _on_task_postrun(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) == TASK_NAME:
        events.leave_request()


_connected = False
_our_worker = False  # this process runs grant-worker's own worker (not merely its client)


def connect_signals() -> None:
    """Connect the hooks once per process (they act only for grant-worker's own apps)."""
    global _connected
    if _connected:
        return
    signals.celeryd_init.connect(_on_celeryd_init, weak=False, dispatch_uid="grants-init")
    signals.task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="grants-prerun")
    signals.worker_shutting_down.connect(
        _on_shutting_down, weak=False, dispatch_uid="grants-shutting-down"
    )
    signals.task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="grants-postrun")
    _connected = True
