"""Celery's own worker flags, as `celery -A grant_worker.worker.app worker` receives them.

The project's layer (start line, heartbeat capacity, gauges, the HTTP pool, the watchdog, the
breaker's pause, recovery, the intake bridge) works from `Settings`. A flag that Celery's pool
or consumer would obey while that layer did not would leave a worker that says one thing and
does another, so each flag is either carried into the settings or refused:

- `--concurrency N` is honoured: it becomes the process's GRANTS_CONCURRENCY before anything
  is built from it (the pool, the HTTP connections, the heartbeat's capacity).
- `-Q/--queues` and `-X/--exclude-queues` are refused unless they leave exactly GRANTS_QUEUE:
  the breaker pauses, the watchdog watches and recovery refills that one queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grant_worker.config.settings import MAX_CONCURRENCY, Settings


class FlagRefused(ValueError):
    """Raised with the one line that names the setting to use instead of the flag."""


def apply_worker_flags(settings: Settings, options: Mapping[str, Any]) -> None:
    """Carry Celery's `--concurrency` into `settings`; refuse queue flags that would make this
    worker consume anything but GRANTS_QUEUE. Raises `FlagRefused`."""
    _apply_concurrency(settings, options.get("concurrency"))
    queue = settings.grants_queue
    queues = _names(options.get("queues"))
    if queues and queues != [queue]:
        raise FlagRefused(
            f"-Q {','.join(queues)}: this worker consumes GRANTS_QUEUE ({queue}) only; "
            f"set GRANTS_QUEUE={queues[0]} instead of -Q"
            + (" (one queue per worker)" if len(queues) > 1 else "")
        )
    if queue in _names(options.get("exclude_queues")):
        raise FlagRefused(
            f"-X {queue}: GRANTS_QUEUE is the only queue this worker consumes; "
            "set GRANTS_QUEUE to the queue it should consume instead"
        )


def _apply_concurrency(settings: Settings, value: object) -> None:
    if value is None or value == settings.grants_concurrency:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise FlagRefused(
            f"--concurrency {value}: the threads pool needs a number; "
            f"set GRANTS_CONCURRENCY (1 to {MAX_CONCURRENCY}) instead"
        )
    if not 1 <= value <= MAX_CONCURRENCY:
        raise FlagRefused(
            f"--concurrency {value}: GRANTS_CONCURRENCY must be 1 to {MAX_CONCURRENCY}"
        )
    # The one Settings object of this process: everything built from it from here on (the
    # handler's HTTP pool, the watchdog's heartbeat, the gauges) sees the flag's size.
    settings.grants_concurrency = value


def _names(value: object) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    return [str(item).strip() for item in items if str(item).strip()]
