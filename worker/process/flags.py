"""Celery's own worker flags, as `celery -A grant_worker.worker.app worker` receives them.

The project's layer (start line, heartbeat capacity, gauges, the HTTP pool, the watchdog, the
breaker's pause, recovery, the intake bridge) works from `Settings`. A flag that Celery's pool
or consumer would obey while that layer did not would leave a worker that says one thing and
does another, so each flag is either carried into the settings or refused:

- `--concurrency N` is honoured: it becomes the process's GRANTS_CONCURRENCY before anything
  is built from it (the pool, the HTTP connections, the heartbeat's capacity).
- `-Q/--queues` and `-X/--exclude-queues` are refused unless they leave exactly GRANTS_QUEUE:
  the breaker pauses, the watchdog watches and recovery refills that one queue.
- `-P/--pool` other than `threads` and `--autoscale` are refused: the layer (the in-flight
  register, the HTTP pool, the heartbeat's capacity, the shutdown) lives in one process of
  GRANTS_CONCURRENCY threads.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click
from click.core import ParameterSource

from grant_worker.config.settings import MAX_CONCURRENCY, Settings


class FlagRefused(ValueError):
    """Raised with the one line that names the setting to use instead of the flag."""


def apply_worker_flags(settings: Settings, options: Mapping[str, Any]) -> None:
    """Carry Celery's `--concurrency` into `settings`; refuse queue flags that would make this
    worker consume anything but GRANTS_QUEUE. Raises `FlagRefused`."""
    _refuse_other_pools(options.get("pool"), options.get("autoscale"))
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


def _refuse_other_pools(pool: object, autoscale: object) -> None:
    if autoscale:
        shown = ",".join(map(str, autoscale)) if isinstance(autoscale, tuple | list) else autoscale
        raise FlagRefused(
            f"--autoscale {shown}: the pool has a fixed size; set GRANTS_CONCURRENCY instead"
        )
    named = _pool_named_on_command_line(sys.argv)
    if named is None and pool is not None and not _is_threads(pool):
        named = getattr(pool, "__module__", str(pool)).rpartition(".")[2]
    if named is not None and named != "threads":
        raise FlagRefused(
            f"-P {named}: the pool is always threads; drop -P and set GRANTS_CONCURRENCY "
            "for its size"
        )


def _is_threads(pool: object) -> bool:
    from celery.concurrency import get_implementation

    return pool is get_implementation("threads") or pool == "threads"


def _pool_named_on_command_line(argv: Sequence[str]) -> str | None:
    """The pool `-P`/`--pool` named, read from the command line: Celery turns an explicit
    `-P prefork` into the app's configured pool (threads) before any signal sees it, so only
    the words typed tell it from the default."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.get_parameter_source("pool") is not ParameterSource.COMMANDLINE:
        return None
    named = None
    for i, word in enumerate(argv):
        match = re.fullmatch(r"(?:-P|--pool=?)(.*)", word)
        if match:
            named = match.group(1) or (argv[i + 1] if i + 1 < len(argv) else None)
    return named


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
