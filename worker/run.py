"""Running a worker process: the Celery worker on a threads pool, plus metrics when asked."""

from __future__ import annotations

from typing import Any

from grant_worker.config.settings import Settings
from grant_worker.worker.app import create_app
from grant_worker.worker.metrics import serve_metrics


def run_worker(settings: Settings, *, loglevel: str = "INFO", hostname: str | None = None) -> int:
    """Run until stopped (SIGTERM / Ctrl-C: finish the requests in hand, then exit).

    Returns the worker's exit code: Celery's `worker_main` drops it, and a worker that ended on
    an error then exited 0, which `Restart=on-failure` supervisors take for a clean stop.
    """
    settings.require_auth0()
    app = create_app(settings)
    if settings.grants_metrics_port:
        serve_metrics(settings.grants_metrics_port)
    argv = [
        "worker",
        "--pool=threads",
        f"--concurrency={settings.grants_concurrency}",
        f"--queues={settings.grants_queue}",
        f"--loglevel={loglevel}",
        # No broadcast chatter between workers: nothing here needs it, and it costs Redis calls.
        "--without-mingle",
        "--without-gossip",
    ]
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
