"""Sending one request from a command (`grants submit`, `grants revoke`), the same way for both.

A request id the caller gave that was used before (`worker.client.reuse`): for another request,
the command refuses it (exit 1, saying for what the id was used and how that ended); for this
very request, nothing is enqueued again: its recorded outcome is the answer, or, while it is in
flight, waiting for it is all a retry can do. A `--wait` that times out says when no worker
consumes the queue (`no_worker_note`), exit 3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.models import GrantRequest, Outcome
from grant_worker.worker.cli.base import fail_usage, load_settings, no_worker_note, say
from grant_worker.worker.exit_codes import EXIT_FAILED, EXIT_TIMEOUT, fail

if TYPE_CHECKING:
    from grant_worker.worker.client.grant_client import GrantClient


def send_once(envelope: dict[str, Any], *, wait: bool, timeout_s: float) -> Outcome | None:
    """Validate `envelope` (exit 2 naming each broken rule), enqueue it unless its id answers
    already, and print its request id; returns its outcome: the recorded one of a resubmitted
    request, or with `wait` the one that arrives (None without `wait`)."""
    from grant_worker.worker.client.grant_client import GrantClient

    with GrantClient(load_settings()) as client:
        try:
            prepared = client.prepare(envelope)
        except RequestInvalid as exc:
            fail_usage(f"invalid request: {exc.message}")
        return _send_prepared(
            client, prepared, given_id="request_id" in envelope, wait=wait, timeout_s=timeout_s
        )


def _send_prepared(
    client: GrantClient,
    prepared: GrantRequest,
    *,
    given_id: bool,
    wait: bool,
    timeout_s: float,
) -> Outcome | None:
    """`send_once` of a validated request; `given_id`: the caller named the id."""
    from grant_worker.worker.client.grant_client import WaitTimeout

    earlier = None
    if given_id:
        from grant_worker.worker.client.reuse import earlier_use

        earlier = earlier_use(client, prepared)
    if earlier is not None and not earlier.same_request:
        fail(earlier.refusal, EXIT_FAILED)
    if earlier is not None and earlier.outcome is not None:
        # The worker would answer this very request with its recorded outcome: a retrying
        # script is given it now, and nothing is enqueued again.
        outcome = earlier.outcome
        say(outcome.request_id)
        if not outcome.done:
            say(
                f"request {outcome.request_id} ended {outcome.status} before and is not "
                f"tried again; to retry it, run `grants dlq replay {outcome.request_id}`",
                err=True,
            )
        return outcome
    # In flight under this id already: waiting for it is all a retry can do.
    submitted = prepared.request_id if earlier is not None else client.submit(prepared)
    assert submitted is not None
    say(submitted)
    if not wait:
        return None
    try:
        return client.wait(submitted, timeout_s=timeout_s)
    except WaitTimeout as exc:
        fail(f"timeout: {exc}{no_worker_note(client)}", EXIT_TIMEOUT)
