"""`grants results`: outcomes from the results stream as JSON lines."""

from __future__ import annotations

from typing import get_args

import click

from grant_worker.tasks.messages.models import Status
from grant_worker.worker.cli.base import echo_outcome, fail_usage, load_settings, say
from grant_worker.worker.exit_codes import EXIT_TIMEOUT, fail


@click.command()
@click.option("--follow", is_flag=True, help="Keep printing new outcomes as they arrive.")
@click.option("--from-start", is_flag=True, help="With --follow: the history first.")
@click.option("--request-id", default=None, help="This request's outcome (its record).")
@click.option("--batch-id", default=None)
@click.option("--status", type=click.Choice(list(get_args(Status))))
@click.option("--since", default=None, help="ISO 8601 time, or an age: 30s, 15m, 2h, 1d.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="At most N outcomes, oldest first."
)
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=None,
    help="The newest N outcomes (printed oldest first).",
)
def results(
    follow: bool,
    from_start: bool,
    request_id: str | None,
    batch_id: str | None,
    status: str | None,
    since: str | None,
    limit: int | None,
    last: int | None,
) -> None:
    """Print outcomes from the results stream as JSON lines; exit 3 when --request-id has none."""
    from itertools import islice

    from grant_worker.worker.client.grant_client import GrantClient

    if last is not None and (follow or limit is not None or request_id is not None):
        fail_usage("--last reads what is recorded: it takes no --follow, --limit or --request-id")
    since_ms = parse_since(since) if since is not None else None
    with GrantClient(load_settings()) as client:
        if last is not None:
            for outcome in client.newest_results(
                last, batch_id=batch_id, status=status, since_ms=since_ms, on_unreadable=_skipped
            ):
                echo_outcome(outcome)
            return
        found = client.results(
            request_id=request_id,
            batch_id=batch_id,
            status=status,
            since_ms=since_ms,
            follow=follow,
            from_start=from_start,
            on_unreadable=_skipped,
        )
        printed = 0
        try:
            for outcome in islice(found, limit):
                echo_outcome(outcome)
                printed += 1
        except KeyboardInterrupt:
            return
    if request_id is not None and not printed:
        fail(f"request {request_id} has no outcome (unknown id, or not finished yet)", EXIT_TIMEOUT)


def _skipped(entry_id: str, why: str) -> None:
    say(f"skipped results entry {entry_id}: unreadable, {why}", err=True)


_AGE_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> int:
    """`--since` as epoch milliseconds: an ISO 8601 time (UTC if no zone) or an age."""
    import re
    import time
    from datetime import UTC, datetime

    age = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if age:
        return int((time.time() - float(age[1]) * _AGE_UNITS_S[age[2]]) * 1000)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail_usage(f"--since: {text!r} is neither an ISO 8601 time nor an age like 15m")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
