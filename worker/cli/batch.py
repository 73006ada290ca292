"""`grants batch status B | list | cancel B`: a batch's progress from its ledger; withdrawing it."""

from __future__ import annotations

from typing import Any

import click

from grant_worker.tasks.outcomes.batches import STATES, BatchView, list_batches, read_batch
from grant_worker.worker.cli.base import echo_json, load_settings, say
from grant_worker.worker.cli.progress import human_duration
from grant_worker.worker.exit_codes import fail_usage


def describe(view: BatchView) -> str:
    """One line for people: `B: 120/1000 ended (…), 800 queued, 8 in flight, 49.5/s, ETA …`."""
    ended = ", ".join(
        f"{getattr(view, state)} {state.replace('_', ' ')}"
        for state in STATES
        if getattr(view, state)
    )
    rate = f"{view.rate_per_s:.1f}/s" if view.rate_per_s else "rate unknown"
    eta = "ETA unknown" if view.eta_s is None else f"ETA {human_duration(view.eta_s)}"
    unreadable = f" (unreadable: {', '.join(view.unreadable)})" if view.unreadable else ""
    return (
        f"{view.batch_id}: {view.finished}/{view.total} ended ({ended or 'none yet'}), "
        f"{view.queued} queued, {view.in_flight} in flight, {rate}, {eta}{unreadable}"
    )


@click.group()
def batch() -> None:
    """A batch's progress (from its ledger, not by scanning streams); withdrawing it."""


def _client() -> Any:
    from grant_worker.worker.client.grant_client import GrantClient

    return GrantClient(load_settings())


@batch.command("status")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def batch_status(batch_id: str, as_json: bool) -> None:
    """Counts by state, queued, in flight, rate and ETA of BATCH_ID."""
    with _client() as client:
        view = read_batch(client.redis, client.keys, batch_id)
    if view is None:
        fail_usage(f"no batch {batch_id!r}")
    if as_json:
        echo_json(view.as_dict())
    else:
        say(describe(view))


@batch.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines.")
def batch_list(limit: int, as_json: bool) -> None:
    """The batches with the latest activity, newest first."""
    with _client() as client:
        views = list_batches(client.redis, client.keys, limit)
    for view in views:
        if as_json:
            echo_json(view.as_dict())
        else:
            say(describe(view))


@batch.command("cancel")
@click.argument("batch_id")
@click.option("--dry-run", is_flag=True, help="Say what would be withdrawn; change nothing.")
def batch_cancel(batch_id: str, dry_run: bool) -> None:
    """Withdraw BATCH_ID's queued requests: each ends `rejected` with code `cancelled`
    (replay them later with `grants dlq replay --batch-id`)."""
    from grant_worker.worker.client.batch_cancel import cancel_batch

    with _client() as client:
        done = cancel_batch(client, batch_id, dry_run=dry_run)
        view = read_batch(client.redis, client.keys, batch_id)
    action = "would withdraw" if dry_run else "withdrawn"
    for request_id in done.withdrawn:
        echo_json({"request_id": request_id, "batch_id": batch_id, "action": action})
    in_flight = view.in_flight if view else 0
    say(
        f"{len(done.withdrawn)} {action}; {len(done.taken_first)} taken by a worker first; "
        f"{in_flight} in flight are left to finish",
        err=True,
    )
