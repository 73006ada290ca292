"""`grants bulk FILE`: the command; the run, the report and the plan are its siblings."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from grant_worker.tasks.errors import GrantWorkerError
from grant_worker.worker.cli.base import POSITIVE_SECONDS, fail_usage, load_settings, say
from grant_worker.worker.exit_codes import EXIT_FAILED, fail


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None)
@click.option("--batch-id", default=None, help="Default: derived from the file's content.")
@click.option("--plan", is_flag=True, help="Say what each row would do; write nothing.")
@click.option("--skip-invalid", is_flag=True, help="Enqueue the valid rows (needs --rejects).")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where --skip-invalid writes the invalid rows and their reasons.",
)
@click.option("--wait", is_flag=True, help="Follow the outcomes to a summary.")
@click.option("--timeout", "timeout_s", type=POSITIVE_SECONDS, default=3600.0, show_default=True)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None)
def bulk(
    file: Path,
    fmt: str | None,
    batch_id: str | None,
    plan: bool,
    skip_invalid: bool,
    rejects: Path | None,
    wait: bool,
    timeout_s: float,
    report: Path | None,
) -> None:
    """Check every row of FILE (JSON lines or CSV), then enqueue them; rerunning resumes."""
    from grant_worker.worker.cli.bulk.run import BulkOptions, run_bulk

    if report is not None and not wait and not plan:
        fail_usage("--report needs --wait (the report holds the outcomes)")
    if skip_invalid != (rejects is not None):
        fail_usage("--skip-invalid and --rejects FILE go together")
    if plan and (wait or report is not None or skip_invalid):
        fail_usage("--plan writes nothing: it takes no --wait, --report or --skip-invalid")
    settings = load_settings()
    if plan:
        from grant_worker.worker.cli.bulk.plan import run_plan
        from grant_worker.worker.cli.bulk.rows import check_file, guess_format

        try:
            settings.require_auth0()
        except ValueError as exc:
            fail_usage(f"configuration: {exc} (--plan reads the tenant)")
        checked = check_file(file, "csv" if (fmt or guess_format(file)) == "csv" else "jsonl",
                             batch_id=batch_id)  # fmt: skip
        say(f"batch {checked.batch_id}", err=True)
        try:
            code = run_plan(settings, checked, terminal=sys.stdout.isatty())
        except GrantWorkerError as exc:
            fail(f"the tenant could not be read for the plan: {exc}", EXIT_FAILED)
        sys.exit(code)
    options = BulkOptions(
        fmt=fmt,
        batch_id=batch_id,
        wait=wait,
        timeout_s=timeout_s,
        report=report,
        skip_invalid=skip_invalid,
        rejects=rejects,
    )
    sys.exit(run_bulk(settings, file, options))
