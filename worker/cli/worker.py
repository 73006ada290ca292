"""`grants worker`: run a worker process, as `celery -A grant_worker.worker.app worker` does."""

from __future__ import annotations

import sys

import click

from grant_worker.worker.cli.base import fail_usage, load_settings


@click.command()
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--hostname", default=None, help="Celery node name (default: celery@host).")
def worker(loglevel: str, hostname: str | None) -> None:
    """Run a worker (threads pool of GRANTS_CONCURRENCY) with the intake bridge."""
    from grant_worker.worker.logs import configure_early_logging
    from grant_worker.worker.process.run import run_worker

    configure_early_logging()
    settings = load_settings()
    try:
        settings.require_auth0()
    except ValueError as exc:
        fail_usage(f"configuration: {exc}")
    sys.exit(run_worker(settings, loglevel=loglevel, hostname=hostname))
