"""`grants submit`: enqueue one request, and with `--wait` print its outcome."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from grant_worker.worker.cli.base import (
    POSITIVE_SECONDS,
    echo_outcome,
    exit_code_for,
    fail_usage,
    say,
)
from grant_worker.worker.cli.sending import send_once


@click.command()
@click.option("--audience", required=True, help="The API identifier (resource server).")
@click.option("--client-id", default=None, help="The application the grant is for.")
@click.option("--default-for", type=click.Choice(["third_party_clients"]), default=None)
@click.option(
    "--scope", "scopes", multiple=True, help="Scopes, split on spaces and commas; repeatable."
)
@click.option("--subject-type", type=click.Choice(["client", "user", "anonymous_user"]))
@click.option("--organization-usage", type=click.Choice(["deny", "allow", "require"]))
@click.option("--allow-any-organization/--no-allow-any-organization", default=None)
@click.option("--allow-all-scopes/--no-allow-all-scopes", default=None)
@click.option(
    "--authorization-details-type",
    "details_types",
    multiple=True,
    help="Authorization details types, split on spaces and commas; repeatable.",
)
@click.option(
    "--on-conflict",
    type=click.Choice(["keep", "merge", "replace", "fail"]),
    default="keep",
    show_default=True,
)
@click.option("--request-id", default=None, help="Idempotency key (default: generated).")
@click.option("--batch-id", default=None)
@click.option("--metadata", default=None, help="A JSON object echoed in the outcome.")
@click.option("--wait", is_flag=True, help="Wait for the outcome and print it as JSON.")
@click.option("--timeout", "timeout_s", type=POSITIVE_SECONDS, default=60.0, show_default=True)
def submit(
    audience: str,
    scopes: tuple[str, ...],
    details_types: tuple[str, ...],
    on_conflict: str,
    request_id: str | None,
    batch_id: str | None,
    metadata: str | None,
    wait: bool,
    timeout_s: float,
    **fields: Any,
) -> None:
    """Enqueue one grant request and print its request id."""
    from grant_worker.worker.cli.bulk.rows import split_list

    grant: dict[str, Any] = {"audience": audience}
    grant.update({name: value for name, value in fields.items() if value is not None})
    if scopes:
        # The same scope given twice is asked for once.
        grant["scope"] = list(dict.fromkeys(item for value in scopes for item in split_list(value)))
    if details_types:
        grant["authorization_details_types"] = [
            item for value in details_types for item in split_list(value)
        ]
    envelope: dict[str, Any] = {"grant": grant, "on_conflict": on_conflict}
    if request_id is not None:
        envelope["request_id"] = request_id
    if batch_id is not None:
        envelope["batch_id"] = batch_id
    if metadata is not None:
        try:
            envelope["metadata"] = json.loads(metadata)
        except json.JSONDecodeError as exc:
            fail_usage(f"--metadata: not valid JSON ({exc.msg})")
    outcome = send_once(envelope, wait=wait, timeout_s=timeout_s)
    if outcome is None:
        return
    echo_outcome(outcome)
    if outcome.status == "exists" and outcome.differences:
        say(drift_note(outcome.differences), err=True, multiline=True)
    sys.exit(exit_code_for([outcome]))


def drift_note(differences: dict[str, Any]) -> str:
    """The warning for an `exists` whose grant differs from the request (exit code stays 0)."""
    parts = []
    for name, diff in sorted(differences.items()):
        if "missing" in diff:
            parts.append(f"{name} missing {diff['missing']}, extra {diff['extra']}")
        else:
            parts.append(f"{name} is {diff['actual']!r}, requested {diff['requested']!r}")
    return (
        "drift: the grant exists but differs: " + "; ".join(parts) + ". "
        "--on-conflict merge adds the missing scopes; --on-conflict replace makes it equal."
    )
