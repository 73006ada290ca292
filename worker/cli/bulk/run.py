"""`grants bulk`: check every row, resume what an earlier run left, enqueue, follow to a summary.

A run is resumable by construction (ids derive from the content, `worker.cli.bulk.rows`): rows whose
requests already ended are counted and not sent, rows an earlier run enqueued are waited for,
and only the rest are sent. Ctrl-C or SIGTERM stops it between steps, with the summary so far,
the report, and the command that resumes it (exit 130).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from grant_worker.config.settings import Settings
from grant_worker.tasks.messages.models import Outcome
from grant_worker.tasks.outcomes.batches import QUEUED
from grant_worker.worker.cli.base import echo_json, no_worker_note, rich_safe
from grant_worker.worker.cli.bulk.report import (
    SUMMARY_STATES,
    report_lines,
    summary,
    write_rejects,
    write_report,
)
from grant_worker.worker.cli.bulk.rows import (
    Checked,
    Format,
    Row,
    check_file,
    derive_batch_id,
    guess_format,
)
from grant_worker.worker.cli.progress import Meter, StopSignals, say
from grant_worker.worker.client.grant_client import ENQUEUE_CHUNK, GrantClient, WaitTimeout
from grant_worker.worker.exit_codes import (
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from grant_worker.worker.shown import shown


@dataclass(frozen=True)
class BulkOptions:
    fmt: str | None = None
    batch_id: str | None = None
    wait: bool = False
    timeout_s: float = 3600.0
    report: Path | None = None
    skip_invalid: bool = False
    rejects: Path | None = None


@dataclass
class _Run:
    """What one run knows about its rows as it goes."""

    checked: Checked
    outcomes: dict[str, Outcome]
    sent: set[str]  # request ids on the queue or ended: enqueued by this run or an earlier one


def run_bulk(settings: Settings, path: Path, options: BulkOptions) -> int:
    """Returns the exit code (docs/design.md, "Exit codes"): 0 all done, 1 some failed,
    rejected or invalid, 2 usage, 3 timed out waiting, 130 interrupted."""
    file_format: Format = "csv" if (options.fmt or guess_format(path)) == "csv" else "jsonl"
    batch_id = options.batch_id or derive_batch_id(path.read_bytes())
    # First, so that whatever happens next, the batch can be named (status, cancel, resume).
    say(f"batch {batch_id}")
    with StopSignals() as stop:
        checked = check_file(path, file_format, batch_id=batch_id)
        if not _checks_pass(checked, options):
            return EXIT_FAILED
        if not checked.rows:
            say("no rows to send")
            return EXIT_FAILED if checked.invalid else EXIT_USAGE
        run = _Run(checked, {}, set())
        with GrantClient(settings) as client:
            if not stop.requested:
                run = _resume(client, checked)
                _enqueue(client, run, settings, stop)
            if not stop.requested:
                click.echo(shown(batch_id))
                if not options.wait:
                    return _exit_code(run, waited=False)
                try:
                    _wait(client, run, settings, options.timeout_s, stop)
                except WaitTimeout as exc:
                    say(f"timeout: {exc}{no_worker_note(client)}")
                    _list_pending(run)
                    _finish(run, options)
                    return EXIT_TIMEOUT
        if stop.requested:
            _finish(run, options)
            say("interrupted; resume with: " + resume_command(path, batch_id, options))
            return EXIT_INTERRUPTED
    _finish(run, options)
    return _exit_code(run, waited=True)


def resume_command(path: Path, batch_id: str, options: BulkOptions) -> str:
    words = ["grants", "bulk", str(path), "--batch-id", batch_id, "--wait"]
    if options.fmt:
        words += ["--format", options.fmt]
    if options.report:
        words += ["--report", str(options.report)]
    if options.skip_invalid:
        words += ["--skip-invalid", "--rejects", str(options.rejects)]
    return shlex.join(words)


def _checks_pass(checked: Checked, options: BulkOptions) -> bool:
    for duplicate in checked.duplicates:
        say(
            f"line {duplicate.line}: warning: the same request as line {duplicate.first.line} "
            "(after normalisation); sent once"
        )
    for problem in checked.invalid:
        for text in problem.problems:
            say(f"line {problem.line}: {text}")
    if not checked.invalid:
        return True
    if not options.skip_invalid:
        say(
            f"{len(checked.invalid)} invalid rows; nothing was enqueued "
            "(--skip-invalid --rejects FILE enqueues the valid rows)"
        )
        return False
    assert options.rejects is not None  # the CLI requires it with --skip-invalid
    write_rejects(options.rejects, checked)
    say(f"{len(checked.invalid)} invalid rows written to {options.rejects}; the rest go on")
    return True


def _resume(client: GrantClient, checked: Checked) -> _Run:
    """Which rows ended already, which an earlier run left on the queue, which are new."""
    # The ledger first, the records second: a row that ends in between is then found ended,
    # never taken for one no run has sent (workers keep working while a rerun starts).
    queued = queued_before(client, checked.rows)
    outcomes = client.recorded_many([row.request_id for row in checked.rows])
    queued -= set(outcomes)
    waiting = [row for row in checked.rows if row.request_id not in outcomes]
    if outcomes or queued:
        say(
            f"resuming: {len(outcomes)} rows already ended, {len(queued)} still queued "
            f"from an earlier run, {len(waiting) - len(queued)} to send"
        )
    return _Run(checked, outcomes, set(outcomes) | queued)


def queued_before(client: GrantClient, rows: list[Row]) -> set[str]:
    """Request ids the batch ledger has as enqueued and not yet ended."""
    pipe = client.redis.pipeline(transaction=False)
    for row in rows:
        assert row.request.batch_id is not None
        pipe.hget(client.keys.batch_rows(row.request.batch_id), row.request_id)
    states: list[Any] = pipe.execute() if rows else []
    return {row.request_id for row, state in zip(rows, states, strict=True) if state == QUEUED}


def _enqueue(client: GrantClient, run: _Run, settings: Settings, stop: StopSignals) -> None:
    to_send = [row.request for row in run.checked.rows if row.request_id not in run.sent]
    if not to_send:
        return
    meter = Meter(
        "enqueued",
        len(to_send),
        interval_s=settings.grants_progress_interval_s,
        terminal=sys.stderr.isatty(),
    )
    try:
        for start in range(0, len(to_send), ENQUEUE_CHUNK):
            if stop.requested:
                break
            chunk = to_send[start : start + ENQUEUE_CHUNK]
            run.sent.update(client.submit_many(chunk))
            meter.advance(len(chunk))
    finally:
        meter.close()


def _wait(
    client: GrantClient, run: _Run, settings: Settings, timeout_s: float, stop: StopSignals
) -> None:
    pending = [row.request_id for row in run.checked.rows if row.request_id not in run.outcomes]
    meter = Meter(
        "finished",
        len(run.checked.rows),
        done=len(run.outcomes),
        interval_s=settings.grants_progress_interval_s,
        terminal=sys.stderr.isatty(),
    )
    try:
        for outcome in client.wait_many(pending, timeout_s=timeout_s, stop=lambda: stop.requested):
            run.outcomes[outcome.request_id] = outcome
            meter.advance()
    finally:
        meter.close()


def _list_pending(run: _Run) -> None:
    for row in run.checked.rows:
        if row.request_id not in run.outcomes:
            say(f"line {row.line}: pending {row.request_id}")


def _finish(run: _Run, options: BulkOptions) -> None:
    """The report (when asked) and the summary: a table or plain lines, then JSON on stdout."""
    if options.report is not None:
        write_report(options.report, report_lines(run.checked, run.outcomes, run.sent))
    counts = summary(run.checked, run.outcomes, run.sent)
    if sys.stderr.isatty():
        table = Table(title=f"batch {rich_safe(counts['batch_id'])}")
        table.add_column("rows")
        table.add_column("count", justify="right")
        for state in (*SUMMARY_STATES, "duplicates"):
            if counts[state]:
                table.add_row(state.replace("_", ", " if state == "exists_differs" else " "),
                              str(counts[state]))  # fmt: skip
        Console(stderr=True).print(table)
    else:
        say(", ".join(f"{counts[s]} {s}" for s in (*SUMMARY_STATES, "duplicates") if counts[s]))
    if counts["exists_differs"]:
        say(
            f"{counts['exists_differs']} grants exist but differ from their rows "
            "(see differences in the report); on_conflict merge adds missing scopes"
        )
    echo_json(counts)


def _exit_code(run: _Run, *, waited: bool) -> int:
    if run.checked.invalid:
        return EXIT_FAILED
    if waited and any(not outcome.done for outcome in run.outcomes.values()):
        return EXIT_FAILED
    return EXIT_DONE
