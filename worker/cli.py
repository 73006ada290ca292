"""The `grants` command: a thin click group over library functions.

Exit codes (DESIGN.md): 0 done (created / exists / updated), 1 failed or rejected,
2 usage or config error, 3 timed out waiting, 4 broker unavailable.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from grant_worker.config.settings import Settings
from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.models import Outcome
from grant_worker.tasks.messages.validation import describe_errors
from grant_worker.worker.exit_codes import (
    EXIT_BROKER_UNAVAILABLE,
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, or exit 2 naming the variable and the rule."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        fail_usage("configuration: " + "; ".join(describe_errors(exc)))


def fail_usage(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def exit_code_for(outcomes: list[Outcome]) -> int:
    return EXIT_DONE if all(outcome.done for outcome in outcomes) else EXIT_FAILED


def echo_outcome(outcome: Outcome) -> None:
    click.echo(outcome.to_json())


class GrantsGroup(click.Group):
    """Turns broker failures into an exit code with a message, not a traceback: 4 "broker
    unavailable" (unreachable, out of memory, read-only, loading), 2 when Redis refused the
    credentials (a configuration error).

    The message names the failure, never the URL (it may carry a password).
    """

    def invoke(self, ctx: click.Context) -> Any:
        import kombu.exceptions
        import redis

        from grant_worker.worker.broker_faults import classify

        try:
            return super().invoke(ctx)
        except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
            cause = exc.__cause__ or exc.__context__
            refused = classify(exc) == "auth" or (cause is not None and classify(cause) == "auth")
            text = f"{type(exc).__name__}: {_scrubbed(exc)}"
            if refused:
                fail_usage(f"Redis at REDIS_URL refused the credentials: {text}")
            click.echo(f"error: broker unavailable (Redis at REDIS_URL): {text}", err=True)
            sys.exit(EXIT_BROKER_UNAVAILABLE)


def _scrubbed(exc: BaseException) -> str:
    text = str(exc)
    try:
        password = urlsplit(Settings().redis_url.get_secret_value()).password
    except ValidationError:
        password = None
    return text.replace(password, "***") if password else text


@click.group(cls=GrantsGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Provision Auth0 client grants from a Redis queue."""


@cli.command()
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--hostname", default=None, help="Celery node name (default: celery@host).")
def worker(loglevel: str, hostname: str | None) -> None:
    """Run a worker (threads pool of GRANTS_CONCURRENCY) with the intake bridge."""
    from grant_worker.worker.run import run_worker

    settings = load_settings()
    try:
        settings.require_auth0()
    except ValueError as exc:
        fail_usage(f"configuration: {exc}")
    sys.exit(run_worker(settings, loglevel=loglevel, hostname=hostname))


@cli.command()
@click.option("--audience", required=True, help="The API identifier (resource server).")
@click.option("--client-id", default=None, help="The application the grant is for.")
@click.option("--default-for", type=click.Choice(["third_party_clients"]), default=None)
@click.option("--scope", "scopes", multiple=True, help="A scope; repeat for several.")
@click.option("--subject-type", type=click.Choice(["client", "user", "anonymous_user"]))
@click.option(
    "--on-conflict",
    type=click.Choice(["keep", "merge", "replace", "fail"]),
    default="keep",
    show_default=True,
)
@click.option("--request-id", default=None, help="Idempotency key (default: generated).")
@click.option("--batch-id", default=None)
@click.option("--wait", is_flag=True, help="Wait for the outcome and print it as JSON.")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True)
def submit(
    audience: str,
    client_id: str | None,
    default_for: str | None,
    scopes: tuple[str, ...],
    subject_type: str | None,
    on_conflict: str,
    request_id: str | None,
    batch_id: str | None,
    wait: bool,
    timeout_s: float,
) -> None:
    """Enqueue one grant request and print its request id."""
    from grant_worker.worker.client import GrantClient, WaitTimeout

    grant: dict[str, Any] = {"audience": audience}
    for name, value in (
        ("client_id", client_id),
        ("default_for", default_for),
        ("subject_type", subject_type),
    ):
        if value is not None:
            grant[name] = value
    if scopes:
        grant["scope"] = list(scopes)
    envelope: dict[str, Any] = {"grant": grant, "on_conflict": on_conflict}
    if request_id is not None:
        envelope["request_id"] = request_id
    if batch_id is not None:
        envelope["batch_id"] = batch_id
    with GrantClient(load_settings()) as client:
        try:
            submitted = client.submit(envelope)
        except RequestInvalid as exc:
            fail_usage(f"invalid request: {exc.message}")
        click.echo(submitted)
        if not wait:
            return
        try:
            outcome = client.wait(submitted, timeout_s=timeout_s)
        except WaitTimeout as exc:
            click.echo(f"timeout: {exc}", err=True)
            sys.exit(EXIT_TIMEOUT)
    echo_outcome(outcome)
    sys.exit(exit_code_for([outcome]))


@cli.command()
@click.option("--follow", is_flag=True, help="Keep printing new outcomes as they arrive.")
@click.option("--request-id", default=None)
@click.option("--batch-id", default=None)
def results(follow: bool, request_id: str | None, batch_id: str | None) -> None:
    """Print outcomes from the results stream as JSON lines."""
    from grant_worker.worker.client import GrantClient

    with GrantClient(load_settings()) as client:
        try:
            for outcome in client.results(request_id=request_id, batch_id=batch_id, follow=follow):
                echo_outcome(outcome)
        except KeyboardInterrupt:
            pass


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None)
@click.option("--batch-id", default=None, help="Batch of the rows that name none.")
@click.option("--wait", is_flag=True, help="Follow the outcomes to a summary.")
@click.option("--timeout", "timeout_s", type=float, default=3600.0, show_default=True)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None)
def bulk(
    file: Path,
    fmt: str | None,
    batch_id: str | None,
    wait: bool,
    timeout_s: float,
    report: Path | None,
) -> None:
    """Check every row of FILE, then enqueue them all (JSON lines or CSV)."""
    from grant_worker.worker.bulk_run import run_bulk

    sys.exit(
        run_bulk(
            load_settings(),
            file,
            fmt=fmt,
            batch_id=batch_id,
            wait=wait,
            timeout_s=timeout_s,
            report=report,
        )
    )


@cli.group()
def dlq() -> None:
    """The dead-letter stream: failed and rejected requests."""


@dlq.command("list")
@click.option("--code", default=None, help="Only dead letters with this error code.")
def dlq_list(code: str | None) -> None:
    """One JSON line per dead letter."""
    from grant_worker.worker.client import GrantClient
    from grant_worker.worker.dead_letters import DeadLetters

    with GrantClient(load_settings()) as client:
        for letter in DeadLetters(client).all(code=code):
            click.echo(json.dumps(letter.summary()))


@dlq.command("show")
@click.argument("ident")
def dlq_show(ident: str) -> None:
    """The whole dead letter IDENT (stream entry id or request id)."""
    from grant_worker.worker.client import GrantClient
    from grant_worker.worker.dead_letters import DeadLetters

    with GrantClient(load_settings()) as client:
        letter = DeadLetters(client).find(ident)
    if letter is None:
        fail_usage(f"no dead letter {ident!r}")
    click.echo(json.dumps({"id": letter.entry_id, **letter.letter}, indent=2))


def _select(dead: Any, idents: tuple[str, ...], all_: bool, code: str | None) -> list[Any]:
    if sum([bool(idents), all_, code is not None]) != 1:
        fail_usage("name dead letters by ID…, or give exactly one of --all / --code")
    if idents:
        found = []
        for ident in idents:
            letter = dead.find(ident)
            if letter is None:
                fail_usage(f"no dead letter {ident!r}")
            found.append(letter)
        return found
    return list(dead.all(code=code))


@dlq.command("replay")
@click.argument("idents", nargs=-1)
@click.option("--all", "all_", is_flag=True)
@click.option("--code", default=None)
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; change nothing.")
def dlq_replay(idents: tuple[str, ...], all_: bool, code: str | None, dry_run: bool) -> None:
    """Re-validate and re-enqueue dead letters under their request ids."""
    from grant_worker.worker.client import GrantClient
    from grant_worker.worker.dead_letters import DeadLetters

    with GrantClient(load_settings()) as client:
        dead = DeadLetters(client)
        outcomes = dead.replay(_select(dead, idents, all_, code), dry_run=dry_run)
    for result in outcomes:
        click.echo(json.dumps(result.__dict__))
    counts = Counter(result.action for result in outcomes)
    click.echo(
        ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing", err=True
    )
    sys.exit(EXIT_FAILED if counts.get("invalid") else EXIT_DONE)


@dlq.command("purge")
@click.argument("idents", nargs=-1)
@click.option("--all", "all_", is_flag=True)
@click.option("--code", default=None)
def dlq_purge(idents: tuple[str, ...], all_: bool, code: str | None) -> None:
    """Delete dead letters for good."""
    from grant_worker.worker.client import GrantClient
    from grant_worker.worker.dead_letters import DeadLetters

    with GrantClient(load_settings()) as client:
        dead = DeadLetters(client)
        purged = dead.purge(_select(dead, idents, all_, code))
    click.echo(f"{purged} purged", err=True)


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the demo's streams in Redis afterwards.")
def demo(keep: bool) -> None:
    """The whole pipeline on one machine: emulator, a worker, example requests."""
    from grant_worker.worker.demo import run_demo

    sys.exit(run_demo(load_settings(), keep=keep))


def _register_subcommands() -> None:
    from grant_worker.emulator.cli import emulator

    cli.add_command(emulator)


_register_subcommands()


def main() -> None:
    cli()
