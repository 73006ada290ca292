"""Running a worker process: the Celery worker on a threads pool, plus metrics when asked."""

from __future__ import annotations

from grant_worker.config.settings import Settings
from grant_worker.worker.app import create_app
from grant_worker.worker.flow_gate import check_tenant_at_start
from grant_worker.worker.metrics import serve_metrics


def run_worker(settings: Settings, *, loglevel: str = "INFO", hostname: str | None = None) -> None:
    """Run until stopped (SIGTERM / Ctrl-C: finish the requests in hand, then exit)."""
    settings.require_auth0()
    check_tenant_at_start(settings)
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
    app.worker_main(argv)
