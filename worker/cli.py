"""The `grants` command: a thin click group over library functions.

Exit codes (docs/design.md): 0 done (created / exists / updated), 1 failed or rejected,
2 usage or config error, 3 timed out waiting, 4 broker unavailable, 130 interrupted (bulk:
after a summary).
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
from grant_worker.tasks.errors import GrantWorkerError, RequestInvalid
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
@click.version_option(package_name="grant-worker", prog_name="grants")
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


# A wait of 0 or less would time out before anything could happen.
POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)


@cli.command()
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
    from grant_worker.worker.bulk import split_list
    from grant_worker.worker.client import GrantClient, WaitTimeout

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
    with GrantClient(load_settings()) as client:
        if request_id is not None:
            from grant_worker.worker.reuse import earlier_use

            if refusal := earlier_use(client, request_id):
                click.echo(f"error: {refusal}", err=True)
                sys.exit(EXIT_FAILED)
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
    if outcome.status == "exists" and outcome.differences:
        click.echo(drift_note(outcome.differences), err=True)
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


@cli.command()
@click.option("--follow", is_flag=True, help="Keep printing new outcomes as they arrive.")
@click.option("--from-start", is_flag=True, help="With --follow: the history first.")
@click.option("--request-id", default=None, help="This request's outcome (its record).")
@click.option("--batch-id", default=None)
@click.option("--status", type=click.Choice(["created", "exists", "updated", "failed", "rejected"]))
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

    from grant_worker.worker.client import GrantClient

    since_ms = parse_since(since) if since is not None else None
    with GrantClient(load_settings()) as client:
        found = client.results(
            request_id=request_id,
            batch_id=batch_id,
            status=status,
            since_ms=since_ms,
            follow=follow,
            from_start=from_start,
        )
        try:
            for outcome in islice(found, limit):
                echo_outcome(outcome)
        except KeyboardInterrupt:
            pass


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


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None)
@click.option("--batch-id", default=None, help="Default: derived from the file's content.")
@click.option("--plan", is_flag=True, help="Say what each row would do; write nothing.")
@click.option("--skip-invalid", is_flag=True, help="Enqueue the valid rows (needs --rejects).")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where --skip-invalid writes the invalid rows and their reasons.",
)
@click.option("--wait", is_flag=True, help="Follow the outcomes to a summary.")
@click.option("--timeout", "timeout_s", type=POSITIVE_SECONDS, default=3600.0, show_default=True)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None)
def bulk(
    file: Path,
    fmt: str | None,
    batch_id: str | None,
    plan: bool,
    skip_invalid: bool,
    rejects: Path | None,
    wait: bool,
    timeout_s: float,
    report: Path | None,
) -> None:
    """Check every row of FILE (JSON lines or CSV), then enqueue them; rerunning resumes."""
    from grant_worker.worker.bulk_run import BulkOptions, run_bulk

    if report is not None and not wait and not plan:
        fail_usage("--report needs --wait (the report holds the outcomes)")
    if skip_invalid != (rejects is not None):
        fail_usage("--skip-invalid and --rejects FILE go together")
    if plan and (wait or report is not None or skip_invalid):
        fail_usage("--plan writes nothing: it takes no --wait, --report or --skip-invalid")
    settings = load_settings()
    if plan:
        from grant_worker.worker.bulk import check_file, guess_format
        from grant_worker.worker.plan import run_plan

        try:
            settings.require_auth0()
        except ValueError as exc:
            fail_usage(f"configuration: {exc} (--plan reads the tenant)")
        checked = check_file(file, "csv" if (fmt or guess_format(file)) == "csv" else "jsonl",
                             batch_id=batch_id)  # fmt: skip
        click.echo(f"batch {checked.batch_id}", err=True)
        try:
            code = run_plan(settings, checked, terminal=sys.stdout.isatty())
        except GrantWorkerError as exc:
            click.echo(f"error: the tenant's grants could not be read: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        sys.exit(code)
    options = BulkOptions(
        fmt=fmt,
        batch_id=batch_id,
        wait=wait,
        timeout_s=timeout_s,
        report=report,
        skip_invalid=skip_invalid,
        rejects=rejects,
    )
    sys.exit(run_bulk(settings, file, options))


@cli.group()
def dlq() -> None:
    """The dead-letter stream: failed and rejected requests."""


@dlq.command("list")
@click.option("--code", default=None, help="Only dead letters with this error code.")
@click.option("--batch-id", default=None, help="Only dead letters of this batch.")
def dlq_list(code: str | None, batch_id: str | None) -> None:
    """One JSON line per dead letter."""
    from grant_worker.worker.client import GrantClient
    from grant_worker.worker.dead_letters import DeadLetters

    with GrantClient(load_settings()) as client:
        for letter in DeadLetters(client).all(code=code, batch_id=batch_id):
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
    click.echo(json.dumps({"entry_id": letter.entry_id, **letter.letter}, indent=2))


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
@click.argument("idents", nargs=-1)
@click.option("--all", "all_", is_flag=True)
@click.option("--code", default=None)
@click.option("--batch-id", default=None)
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; change nothing.")
def dlq_replay(
    idents: tuple[str, ...], all_: bool, code: str | None, batch_id: str | None, dry_run: bool
) -> None:
    """Re-validate and re-enqueue dead letters under their request ids."""
    from grant_worker.worker.client import GrantClient
    from grant_worker.worker.dead_letters import DeadLetters

    with GrantClient(load_settings()) as client:
        dead = DeadLetters(client)
        outcomes = dead.replay(_select(dead, idents, all_, code, batch_id), dry_run=dry_run)
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
@click.option("--batch-id", default=None)
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
    from grant_worker.worker.client import GrantClient
    from grant_worker.worker.dead_letters import DeadLetters

    with GrantClient(load_settings()) as client:
        dead = DeadLetters(client)
        letters = _select(dead, idents, all_, code, batch_id)
        if dry_run:
            for letter in letters:
                action = {"action": "would purge"}
                click.echo(json.dumps({"entry_id": letter.entry_id,
                                       "request_id": letter.request_id, **action}))  # fmt: skip
            click.echo(f"{len(letters)} would be purged", err=True)
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


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the demo's streams in Redis afterwards.")
def demo(keep: bool) -> None:
    """The whole pipeline on one machine: emulator, a worker, example requests."""
    from grant_worker.worker.demo import run_demo

    sys.exit(run_demo(load_settings(), keep=keep))


def _register_subcommands() -> None:
    from grant_worker.emulator.cli import emulator
    from grant_worker.worker.batch_cli import batch
    from grant_worker.worker.dashboard.command import dashboard

    cli.add_command(emulator)
    cli.add_command(batch)
    cli.add_command(dashboard)
    _register_operations()


def _register_operations() -> None:
    from grant_worker.worker.doctor import doctor_command
    from grant_worker.worker.status import status_command

    cli.add_command(status_command)
    cli.add_command(doctor_command)


_register_subcommands()


def main() -> None:
    cli()
