"""`grants sync FILE --audience A`: make one audience's grants equal a file (see `run`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from grant_worker.tasks.errors import GrantWorkerError
from grant_worker.worker.cli.base import POSITIVE_SECONDS, fail_usage, load_settings
from grant_worker.worker.exit_codes import EXIT_FAILED, fail


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--audience", required=True, help="The one API whose grants FILE lists.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None)
@click.option("--prune", is_flag=True, help="Revoke the audience's grants of clients not in FILE.")
@click.option("--plan", is_flag=True, help="Print each action and a summary; write nothing.")
@click.option("--yes", is_flag=True, help="Allow more revokes than --max-revoke.")
@click.option("--max-revoke", type=click.IntRange(min=0), default=10, show_default=True)
@click.option("--wait", is_flag=True, help="Follow the outcomes to a summary.")
@click.option("--timeout", "timeout_s", type=POSITIVE_SECONDS, default=3600.0, show_default=True)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None)
def sync(
    file: Path,
    audience: str,
    fmt: str | None,
    prune: bool,
    plan: bool,
    yes: bool,
    max_revoke: int,
    wait: bool,
    timeout_s: float,
    report: Path | None,
) -> None:
    """Make the grants on AUDIENCE equal FILE: create, update, and with --prune revoke."""
    from grant_worker.worker.cli.sync.run import SyncOptions, run_sync

    if report is not None and not wait:
        fail_usage("--report needs --wait (the report holds the outcomes)")
    if plan and (wait or report is not None):
        fail_usage("--plan writes nothing: it takes no --wait or --report")
    settings = load_settings()
    try:
        settings.require_auth0()
    except ValueError as exc:
        fail_usage(f"configuration: {exc} (sync reads the tenant)")
    options = SyncOptions(
        audience=audience, fmt=fmt, prune=prune, plan=plan, yes=yes, max_revoke=max_revoke,
        wait=wait, timeout_s=timeout_s, report=report,
    )  # fmt: skip
    try:
        code = run_sync(settings, file, options)
    except GrantWorkerError as exc:
        fail(f"the tenant could not be read for the sync: {exc}", EXIT_FAILED)
    sys.exit(code)
