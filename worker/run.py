"""Running a worker process: `grants worker` is `celery -A grant_worker.worker.app worker`.

Nothing is decided here that the plain Celery command would miss: pool, concurrency, queue and
time limits come from the app's configuration, the checks, logging, health port, bridge and
watchdog from Celery's hooks (`worker.startup`). Only the log level and node name are passed.
"""

from __future__ import annotations

from grant_worker.config.settings import Settings
from grant_worker.worker.app import create_app


def run_worker(settings: Settings, *, loglevel: str = "INFO", hostname: str | None = None) -> None:
    """Run until stopped (SIGTERM / Ctrl-C: finish the requests in hand, then exit)."""
    app = create_app(settings)
    argv = ["worker", f"--loglevel={loglevel}"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)
