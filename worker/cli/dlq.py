"""`grants dlq list | show | replay | purge`: the dead-letter stream, operable."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import click

from grant_worker.worker.cli.base import echo_json, fail_usage, load_settings, say
from grant_worker.worker.exit_codes import EXIT_DONE, EXIT_FAILED


@click.group()
def dlq() -> None:
    """The dead-letter stream: failed and rejected requests."""


@dlq.command("list")
@click.option("--code", default=None, help="Only dead letters with this error code.")
@click.option("--batch-id", default=None, help="Only dead letters of this batch.")
def dlq_list(code: str | None, batch_id: str | None) -> None:
    """One JSON line per dead letter."""
    from grant_worker.worker.client.dead_letters import DeadLetters
    from grant_worker.worker.client.grant_client import GrantClient

    with GrantClient(load_settings()) as client:
        for letter in DeadLetters(client).all(code=code, batch_id=batch_id):
            echo_json(letter.summary())


@dlq.command("show")
@click.argument("ident")
def dlq_show(ident: str) -> None:
    """The whole dead letter IDENT (stream entry id or request id)."""
    from grant_worker.worker.client.dead_letters import DeadLetters
    from grant_worker.worker.client.grant_client import GrantClient

    with GrantClient(load_settings()) as client:
        letter = DeadLetters(client).find(ident)
    if letter is None:
        fail_usage(f"no dead letter {ident!r}")
    echo_json({"entry_id": letter.entry_id, **letter.letter}, indent=2)


F = TypeVar("F", bound=Callable[..., Any])

# The arguments `_select` reads: dead letters named by ID…, or --all, or a filter.
_SELECTION = [
    click.argument("idents", nargs=-1),
    click.option("--all", "all_", is_flag=True),
    click.option("--code", default=None),
    click.option("--batch-id", default=None),
]


def _selection(command: F) -> F:
    for add in reversed(_SELECTION):
        command = add(command)
    return command


def _select(
    dead: Any, idents: tuple[str, ...], all_: bool, code: str | None, batch_id: str | None
) -> list[Any]:
    if bool(idents) + all_ + (code is not None or batch_id is not None) != 1:
        fail_usage("name dead letters by ID…, or give --all, or filter by --code / --batch-id")
    if idents:
        found = []
        for ident in idents:
            letter = dead.find(ident)
            if letter is None:
                fail_usage(f"no dead letter {ident!r}")
            found.append(letter)
        return found
    return list(dead.all(code=code, batch_id=batch_id))


@dlq.command("replay")
@_selection
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; change nothing.")
def dlq_replay(
    idents: tuple[str, ...], all_: bool, code: str | None, batch_id: str | None, dry_run: bool
) -> None:
    """Re-validate and re-enqueue dead letters under their request ids."""
    from grant_worker.worker.client.dead_letters import DeadLetters
    from grant_worker.worker.client.grant_client import GrantClient

    with GrantClient(load_settings()) as client:
        dead = DeadLetters(client)
        outcomes = dead.replay(_select(dead, idents, all_, code, batch_id), dry_run=dry_run)
    for result in outcomes:
        echo_json(result.__dict__)
    counts = Counter(result.action for result in outcomes)
    say(", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing", err=True)
    sys.exit(EXIT_FAILED if counts.get("invalid") else EXIT_DONE)


@dlq.command("purge")
@_selection
@click.option("--dry-run", is_flag=True, help="Say what would be purged; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask (required when not on a terminal).")
def dlq_purge(
    idents: tuple[str, ...],
    all_: bool,
    code: str | None,
    batch_id: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Delete dead letters for good (they cannot be replayed afterwards)."""
    from grant_worker.worker.client.dead_letters import DeadLetters
    from grant_worker.worker.client.grant_client import GrantClient

    with GrantClient(load_settings()) as client:
        dead = DeadLetters(client)
        letters = _select(dead, idents, all_, code, batch_id)
        if dry_run:
            for letter in letters:
                echo_json(
                    {
                        "entry_id": letter.entry_id,
                        "request_id": letter.request_id,
                        "action": "would purge",
                    }
                )
            say(f"{len(letters)} would be purged", err=True)
            return
        if letters and not yes:
            if not sys.stdin.isatty():
                fail_usage(
                    f"purging {len(letters)} dead letters needs --yes when not on a terminal"
                )
            if not click.confirm(f"Purge {len(letters)} dead letters for good?", err=True):
                click.echo("nothing purged", err=True)
                sys.exit(EXIT_FAILED)
        purged = dead.purge(letters)
    click.echo(f"{purged} purged", err=True)
