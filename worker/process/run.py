"""Running a worker process: `grants worker` is `celery -A grant_worker.worker.app worker`.

Nothing is decided here that the plain Celery command would miss: pool, concurrency, queue and
time limits come from the app's configuration, the checks, logging, health port, bridge and
watchdog from Celery's hooks (`worker.process.startup`). Only the log level and node name are
passed.
"""

from __future__ import annotations

from typing import Any

from grant_worker.config.settings import Settings
from grant_worker.worker.process.app import create_app


def run_worker(settings: Settings, *, loglevel: str = "INFO", hostname: str | None = None) -> int:
    """Run until stopped (SIGTERM / Ctrl-C: finish the requests in hand, then exit).

    Returns the worker's exit code: Celery's `worker_main` drops it, and a worker that ended on
    an error then exited 0, which `Restart=on-failure` supervisors take for a clean stop.
    """
    app = create_app(settings)
    argv = ["worker", f"--loglevel={loglevel}"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    return _run_celery(app, argv)


def _run_celery(app: Any, argv: list[str]) -> int:
    """`app.worker_main(argv)`, keeping the exit code Celery's worker sets.

    Celery runs its click command with `standalone_mode=False`, in which click *returns* the
    exit code, and `app.start` drops it.
    """
    from celery.bin.celery import celery as celery_command

    celery_command.params[0].default = app
    try:
        code = celery_command.main(args=argv, standalone_mode=False)
    finally:
        celery_command.params[0].default = None
    return code if isinstance(code, int) else 0
