"""`grants sync`: list the audience once (paced), decide, then enqueue and follow like a batch.

A run is resumable by construction: the batch id derives from the file, the audience and
`--prune`, and every request id from the batch and its content (`worker.cli.sync.plan`). A
rerun lists the tenant again, so what an earlier run finished is `unchanged` now; what it left
on the queue is found in the batch ledger and waited for, not sent again; what ended without
succeeding keeps its outcome (`grants dlq replay` retries it), as in `grants bulk`.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.api import ManagementApi
from grant_worker.tasks.messages.models import Outcome
from grant_worker.tasks.revoke import protected_grants
from grant_worker.worker.cli.base import echo_json, no_worker_note, rich_safe
from grant_worker.worker.cli.bulk.plan import paced_api
from grant_worker.worker.cli.bulk.report import write_report
from grant_worker.worker.cli.bulk.rows import Format, Row, check_file, guess_format
from grant_worker.worker.cli.bulk.run import queued_before
from grant_worker.worker.cli.bulk.targets import SCOPE_OF, read_targets
from grant_worker.worker.cli.progress import Meter, StopSignals, say
from grant_worker.worker.cli.sync.plan import (
    ACTIONS,
    SyncAction,
    decide,
    desired_rows,
    summarise,
)
from grant_worker.worker.client.grant_client import ENQUEUE_CHUNK, GrantClient, WaitTimeout
from grant_worker.worker.exit_codes import (
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    report_error,
)
from grant_worker.worker.shown import shown


@dataclass(frozen=True)
class SyncOptions:
    audience: str
    fmt: str | None = None
    prune: bool = False
    plan: bool = False
    yes: bool = False
    max_revoke: int = 10
    wait: bool = False
    timeout_s: float = 3600.0
    report: Path | None = None


def derive_sync_batch_id(content: bytes, audience: str, prune: bool) -> str:
    """The same file, audience and prune: the same batch (so that a rerun resumes it)."""
    digest = hashlib.sha256(content + f"\0sync\0{audience}\0{prune}".encode()).hexdigest()
    return f"s-{digest[:16]}"


def run_sync(settings: Settings, path: Path, options: SyncOptions) -> int:
    """Returns the exit code: 0 all done, 1 some failed or rejected (or invalid rows), 2 usage
    (too many revokes without --yes), 3 timed out waiting, 130 interrupted."""
    batch_id = derive_sync_batch_id(path.read_bytes(), options.audience, options.prune)
    say(f"batch {batch_id}")
    fmt: Format = "csv" if (options.fmt or guess_format(path)) == "csv" else "jsonl"
    rows, problems = desired_rows(check_file(path, fmt, batch_id=batch_id), options.audience,
                                  batch_id)  # fmt: skip
    for problem in problems:
        for text in problem.problems:
            say(f"line {problem.line}: {text}")
    if problems:
        say(f"{len(problems)} rows cannot be synced; nothing was enqueued")
        return EXIT_FAILED
    api = paced_api(settings)
    existing = api.find_grants(audience=options.audience)
    actions = decide(rows, existing, audience=options.audience, prune=options.prune,
                     protected=protected_grants(settings), batch_id=batch_id)  # fmt: skip
    for action in actions:
        if action.action == "protected":
            say(f"kept {action.grant_id} ({action.client_id or action.default_for}): "
                f"{action.reason}")  # fmt: skip
    if options.plan:
        actions, failing = _checked_creates(api, options.audience, actions)
        _print_plan(batch_id, actions, terminal=sys.stdout.isatty())
        return EXIT_FAILED if failing else EXIT_DONE
    revokes = summarise(actions)["revoke"]
    if revokes > options.max_revoke and not options.yes:
        report_error(
            f"this sync would revoke {revokes} grants, more than --max-revoke "
            f"{options.max_revoke}; nothing was enqueued. Check with --plan, then add --yes"
        )
        return EXIT_USAGE
    return _execute(settings, path, batch_id, actions, options)


def _execute(
    settings: Settings,
    path: Path,
    batch_id: str,
    actions: list[SyncAction],
    options: SyncOptions,
) -> int:
    work = [action for action in actions if action.request is not None]
    outcomes: dict[str, Outcome] = {}
    with StopSignals() as stop, GrantClient(settings) as client:
        sent = _resume(client, work, outcomes)
        to_send = [a.request for a in work if a.request_id not in sent and a.request is not None]
        meter = Meter("enqueued", len(to_send), interval_s=settings.grants_progress_interval_s,
                      terminal=sys.stderr.isatty())  # fmt: skip
        try:
            for start in range(0, len(to_send), ENQUEUE_CHUNK):
                if stop.requested:
                    break
                chunk = to_send[start : start + ENQUEUE_CHUNK]
                sent.update(client.submit_many(chunk))
                meter.advance(len(chunk))
        finally:
            meter.close()
        if not stop.requested:
            click.echo(shown(batch_id))
            if not options.wait:
                return EXIT_DONE
            try:
                _wait(client, settings, work, outcomes, options.timeout_s, stop)
            except WaitTimeout as exc:
                say(f"timeout: {exc}{no_worker_note(client)}")
                _finish(batch_id, actions, outcomes, sent, options)
                return EXIT_TIMEOUT
        if stop.requested:
            _finish(batch_id, actions, outcomes, sent, options)
            say("interrupted; resume with: " + resume_command(path, options))
            return EXIT_INTERRUPTED
    _finish(batch_id, actions, outcomes, sent, options)
    return EXIT_DONE if all(outcome.done for outcome in outcomes.values()) else EXIT_FAILED


def _checked_creates(
    api: ManagementApi, audience: str, actions: list[SyncAction]
) -> tuple[list[SyncAction], bool]:
    """For `--plan`: the audience read (one call), and the client of each create (one call per
    distinct client; a grant that is listed already has its client). A create Auth0 would
    refuse keeps its action and says so in `reason`; True when there is one. A check the token
    has no read scope for is noted and left unchecked, as `grants bulk --plan` does."""
    client_ids = [a.client_id for a in actions if a.action == "create" and a.client_id]
    targets = read_targets(api, [audience], client_ids)
    for check in sorted(targets.unchecked):
        say(f"note: {check}s unchecked: the token lacks {SCOPE_OF[check]}, so creates naming "
            f"an unknown {check} show what the run would try, not that it would fail")  # fmt: skip
    failing = False
    checked: list[SyncAction] = []
    for action in actions:
        refusal = targets.refusal(audience, action.client_id) if action.action == "create" else None
        if refusal is not None:
            code, why = refusal
            failing = True
            action = replace(action, reason=f"would fail ({code}): {why}")
            say(f"line {action.line}: the create would fail ({code}): {why}")
        checked.append(action)
    return checked, failing


def resume_command(path: Path, options: SyncOptions) -> str:
    words = ["grants", "sync", str(path), "--audience", options.audience, "--wait"]
    if options.prune:
        words += ["--prune", "--yes", "--max-revoke", str(options.max_revoke)]
    if options.fmt:
        words += ["--format", options.fmt]
    if options.report:
        words += ["--report", str(options.report)]
    return shlex.join(words)


def _resume(client: GrantClient, work: list[SyncAction], outcomes: dict[str, Outcome]) -> set[str]:
    """Request ids an earlier run enqueued (still queued) or finished; fills `outcomes`."""
    rows = [Row(0, action.request) for action in work if action.request is not None]
    queued = queued_before(client, rows)
    outcomes.update(client.recorded_many([row.request_id for row in rows]))
    queued -= set(outcomes)
    if outcomes or queued:
        say(f"resuming: {len(outcomes)} already ended, {len(queued)} still queued from an "
            f"earlier run, {len(rows) - len(outcomes) - len(queued)} to send")  # fmt: skip
    return set(outcomes) | queued


def _wait(
    client: GrantClient,
    settings: Settings,
    work: list[SyncAction],
    outcomes: dict[str, Outcome],
    timeout_s: float,
    stop: StopSignals,
) -> None:
    pending = [a.request_id for a in work if a.request_id and a.request_id not in outcomes]
    meter = Meter(
        "finished",
        len(work),
        done=len(work) - len(pending),
        interval_s=settings.grants_progress_interval_s,
        terminal=sys.stderr.isatty(),
    )
    try:
        for outcome in client.wait_many(pending, timeout_s=timeout_s, stop=lambda: stop.requested):
            outcomes[outcome.request_id] = outcome
            meter.advance()
    finally:
        meter.close()


def _finish(
    batch_id: str,
    actions: list[SyncAction],
    outcomes: dict[str, Outcome],
    sent: set[str],
    options: SyncOptions,
) -> None:
    """The report (a line per action) and the summary (a JSON object on stdout)."""
    lines = []
    for action in actions:
        entry = action.as_dict()
        outcome = outcomes.get(action.request_id or "")
        if action.request_id is None:
            entry["status"] = action.action
        elif outcome is None:
            entry["status"] = "pending" if action.request_id in sent else "not_sent"
        else:
            entry["status"] = outcome.status
            if outcome.error is not None:
                entry.update(error_code=outcome.error.code, error_message=outcome.error.message)
        lines.append(entry)
    if options.report is not None:
        write_report(options.report, lines)
    statuses: dict[str, int] = {}
    for entry in lines:
        statuses[entry["status"]] = statuses.get(entry["status"], 0) + 1
    say(", ".join(f"{count} {status}" for status, count in sorted(statuses.items())) or "nothing")
    echo_json({"batch_id": batch_id, **summarise(actions), "statuses": statuses})


def _print_plan(batch_id: str, actions: list[SyncAction], *, terminal: bool) -> None:
    summary = {"batch_id": batch_id, **summarise(actions)}
    if not terminal:
        for action in actions:
            echo_json(action.as_dict())
        echo_json(summary)
        return
    table = Table(title=f"sync plan of batch {rich_safe(batch_id)}")
    for column in ("action", "line", "client / default_for", "subject", "grant", "how"):
        table.add_column(column)
    for action in actions:
        how = json.dumps(action.patch) if action.patch else (action.reason or "")
        table.add_row(action.action, str(action.line or ""),
                      rich_safe(action.client_id or action.default_for or ""),
                      rich_safe(action.subject_type), rich_safe(action.grant_id or ""),
                      rich_safe(how))  # fmt: skip
    Console().print(table)
    Console().print(", ".join(f"{summary[name]} {name}" for name in ACTIONS))
