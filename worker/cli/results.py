"""`grants results`: outcomes from the results stream as JSON lines."""

from __future__ import annotations

from typing import get_args

import click

from grant_worker.tasks.messages.models import Status
from grant_worker.worker.cli.base import echo_outcome, fail_usage, load_settings, say


@click.command()
@click.option("--follow", is_flag=True, help="Keep printing new outcomes as they arrive.")
@click.option("--from-start", is_flag=True, help="With --follow: the history first.")
@click.option("--request-id", default=None, help="This request's outcome (its record).")
@click.option("--batch-id", default=None)
@click.option("--status", type=click.Choice(list(get_args(Status))))
@click.option("--since", default=None, help="ISO 8601 time, or an age: 30s, 15m, 2h, 1d.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N outcomes.")
def results(
    follow: bool,
    from_start: bool,
    request_id: str | None,
    batch_id: str | None,
    status: str | None,
    since: str | None,
    limit: int | None,
) -> None:
    """Print outcomes from the results stream as JSON lines."""
    from itertools import islice

    from grant_worker.worker.client.grant_client import GrantClient

    since_ms = parse_since(since) if since is not None else None
    with GrantClient(load_settings()) as client:
        found = client.results(
            request_id=request_id,
            batch_id=batch_id,
            status=status,
            since_ms=since_ms,
            follow=follow,
            from_start=from_start,
            on_unreadable=_skipped,
        )
        try:
            for outcome in islice(found, limit):
                echo_outcome(outcome)
        except KeyboardInterrupt:
            pass


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
