"""`grants bulk`: check every row, enqueue with a progress bar, optionally follow to a summary."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grant_worker.config.settings import Settings
from grant_worker.tasks.messages.models import Outcome
from grant_worker.worker.bulk import Format, guess_format, read_requests
from grant_worker.worker.client import GrantClient, WaitTimeout
from grant_worker.worker.exit_codes import EXIT_DONE, EXIT_FAILED, EXIT_TIMEOUT, EXIT_USAGE

ENQUEUE_CHUNK = 200


def run_bulk(
    settings: Settings,
    path: Path,
    *,
    fmt: str | None,
    batch_id: str | None,
    wait: bool,
    timeout_s: float,
    report: Path | None,
) -> int:
    """Returns the exit code: 1 if any row is invalid (then nothing is enqueued)."""
    console = Console(stderr=True)
    file_format: Format = "csv" if (fmt or guess_format(path)) == "csv" else "jsonl"
    batch_id = batch_id or f"bulk-{uuid.uuid4().hex[:12]}"
    requests, problems = read_requests(path, file_format, batch_id=batch_id)
    if problems:
        for problem in problems:
            for text in problem.problems:
                console.print(f"line {problem.line}: {text}", markup=False, highlight=False)
        console.print(f"{len(problems)} invalid rows; nothing was enqueued")
        return EXIT_FAILED
    if not requests:
        console.print("no rows")
        return EXIT_USAGE
    outcomes: list[Outcome] = []
    with GrantClient(settings) as client, _progress(console) as progress:
        task = progress.add_task("enqueued", total=len(requests))
        ids: list[str] = []
        for start in range(0, len(requests), ENQUEUE_CHUNK):
            chunk = requests[start : start + ENQUEUE_CHUNK]
            ids.extend(client.submit_many(chunk))
            progress.advance(task, len(chunk))
        click.echo(batch_id)
        if not wait:
            return EXIT_DONE
        done = progress.add_task("finished", total=len(ids))
        try:
            for outcome in client.wait_many(ids, timeout_s=timeout_s):
                outcomes.append(outcome)
                progress.advance(done)
        except WaitTimeout as exc:
            console.print(f"timeout: {exc}")
            _write_report(report, outcomes)
            _summary(console, outcomes)
            return EXIT_TIMEOUT
    _write_report(report, outcomes)
    _summary(console, outcomes)
    return EXIT_DONE if all(outcome.done for outcome in outcomes) else EXIT_FAILED


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _write_report(report: Path | None, outcomes: list[Outcome]) -> None:
    if report is None:
        return
    with report.open("w", encoding="utf-8") as handle:
        for outcome in outcomes:
            handle.write(outcome.to_json() + "\n")


def _summary(console: Console, outcomes: list[Outcome]) -> None:
    counts = Counter(
        (outcome.status, outcome.error.code if outcome.error else "") for outcome in outcomes
    )
    table = Table(title="outcomes")
    table.add_column("status")
    table.add_column("code")
    table.add_column("requests", justify="right")
    for (status, code), count in sorted(counts.items()):
        table.add_row(status, code, str(count))
    console.print(table)
    click.echo(json.dumps({f"{s}{':' + c if c else ''}": n for (s, c), n in counts.items()}))
