"""Helpers every `grants` command shares: settings, usage errors, outcomes and exit codes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from grant_worker.config.settings import Settings
from grant_worker.tasks.messages.models import Outcome
from grant_worker.worker.exit_codes import EXIT_DONE, EXIT_FAILED, fail_usage, settings_or_exit
from grant_worker.worker.shown import json_text, shown, shown_json

if TYPE_CHECKING:
    from grant_worker.worker.client.grant_client import GrantClient

__all__ = [
    "POSITIVE_SECONDS",
    "echo_json",
    "echo_outcome",
    "exit_code_for",
    "fail_usage",
    "load_settings",
    "no_worker_note",
    "rich_safe",
    "say",
]

# A wait of 0 or less would time out before anything could happen.
POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and `overrides`), or exit 2 naming each variable."""
    return settings_or_exit(**overrides)


def exit_code_for(outcomes: list[Outcome]) -> int:
    return EXIT_DONE if all(outcome.done for outcome in outcomes) else EXIT_FAILED


def echo_outcome(outcome: Outcome) -> None:
    click.echo(json_text(outcome.to_json()))


def say(text: str, *, err: bool = False, multiline: bool = False) -> None:
    """A line for people; whatever it quotes from Redis or a producer shown safely
    (`worker.shown`): one line unless `multiline`."""
    click.echo(shown(text, multiline=multiline), err=err)


def echo_json(data: Any, **dumps: Any) -> None:
    """One JSON document, exact, with control and bidi characters as `\\uXXXX` escapes."""
    click.echo(shown_json(data, **dumps))


def rich_safe(value: Any) -> str:
    """`value` to put inside Rich markup: sanitised, its brackets escaped, so that a producer's
    `[link=…]` is shown as text and never becomes markup."""
    from rich.markup import escape

    return escape(shown(value))


def no_worker_note(client: GrantClient) -> str:
    """For a `--wait` that timed out: why nothing answered, when no live worker consumes the
    queue the request went to (workers on other queues under the prefix are named)."""
    from grant_worker.tasks.fleet import read_beats

    queue = client.settings.grants_queue
    beats = [beat for beat in read_beats(client.redis, client.keys) if beat.current]
    if any(beat.may_consume(queue) for beat in beats):
        return ""
    others = sorted({q for beat in beats for q in beat.queues or ()})
    elsewhere = f" (live workers here consume {', '.join(others)})" if others else ""
    return (
        f"; no worker is registered on queue {queue} (GRANTS_QUEUE) under this key prefix"
        f"{elsewhere}: start one with `grants worker`"
    )
