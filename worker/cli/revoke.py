"""`grants revoke`: enqueue one revoke, and with `--wait` print its outcome."""

from __future__ import annotations

import sys

import click

from grant_worker.worker.cli.base import POSITIVE_SECONDS, echo_outcome, exit_code_for, fail_usage
from grant_worker.worker.cli.sending import send_once


@click.command()
@click.option("--client-id", default=None, help="The application whose grant goes.")
@click.option("--audience", default=None, help="The API identifier (with --client-id).")
@click.option("--subject-type", type=click.Choice(["client", "user", "anonymous_user"]))
@click.option("--grant-id", default=None, help="The grant's id (cgr_…), instead of the two.")
@click.option("--request-id", default=None, help="Idempotency key (default: generated).")
@click.option("--batch-id", default=None)
@click.option("--wait", is_flag=True, help="Wait for the outcome and print it as JSON.")
@click.option("--timeout", "timeout_s", type=POSITIVE_SECONDS, default=60.0, show_default=True)
def revoke(
    client_id: str | None,
    audience: str | None,
    subject_type: str | None,
    grant_id: str | None,
    request_id: str | None,
    batch_id: str | None,
    wait: bool,
    timeout_s: float,
) -> None:
    """Enqueue the revoke of one grant and print its request id (exit 0: revoked or absent)."""
    from grant_worker.worker.client.grant_client import GrantClient

    by_key = client_id is not None or audience is not None or subject_type is not None
    if by_key == (grant_id is not None):
        fail_usage("name the grant by --client-id and --audience, or by --grant-id (not both)")
    if by_key and (client_id is None or audience is None):
        fail_usage("--client-id and --audience go together")
    envelope = GrantClient.revoke_request(
        client_id=client_id,
        audience=audience,
        subject_type=subject_type,
        grant_id=grant_id,
        request_id=request_id,
        batch_id=batch_id,
    )
    outcome = send_once(envelope, wait=wait, timeout_s=timeout_s)
    if outcome is None:
        return
    echo_outcome(outcome)
    sys.exit(exit_code_for([outcome]))
