"""The `grants` command: a thin click group over library functions, every command attached in
one block (`_register_commands`). Exit codes: `worker.exit_codes`.
"""

from __future__ import annotations

from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from grant_worker.config.settings import Settings
from grant_worker.tasks.broker_faults import classify
from grant_worker.worker.cli.extras import command_or_stand_in
from grant_worker.worker.exit_codes import (
    EXIT_BROKER_UNAVAILABLE,
    fail,
    fail_usage,
)


def _click_error(exc: click.ClickException) -> NoReturn:
    """click's own errors (unknown option, missing argument, bad value...) with the prefix
    every other error line has, where click would print `Error: `; same exit code (2 for
    usage errors), same usage line and help hint before it."""
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is not None:
        hint = ""
        if ctx.command.get_help_option(ctx) is not None:
            hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.\n"
        click.echo(f"{ctx.get_usage()}\n{hint}", err=True, color=ctx.color)
    fail(exc.format_message(), exc.exit_code)


class GrantsGroup(click.Group):
    """Every error line starts with `error: ` (click's own usage errors included), and broker
    failures become an exit code with a message, not a traceback: 4 "broker unavailable"
    (unreachable, out of memory, read-only, loading), 2 when Redis refused the credentials (a
    configuration error).

    The message names the failure, never the URL (it may carry a password).
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # The group's own options and arguments are parsed here, before `invoke`.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            _click_error(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        except click.ClickException as exc:
            _click_error(exc)

    def _invoke(self, ctx: click.Context) -> Any:
        import kombu.exceptions
        import redis

        from grant_worker.worker.client.broker import BrokerUnavailable

        try:
            return super().invoke(ctx)
        except BrokerUnavailable as exc:
            if exc.credentials_refused:
                fail_usage(exc.message)
            fail(f"broker unavailable: {exc.message}", EXIT_BROKER_UNAVAILABLE)
        except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
            cause = exc.__cause__ or exc.__context__
            refused = classify(exc) == "auth" or (cause is not None and classify(cause) == "auth")
            text = f"{type(exc).__name__}: {_scrubbed(exc)}"
            if refused:
                fail_usage(f"Redis at REDIS_URL refused the credentials: {text}")
            fail(f"broker unavailable (Redis at REDIS_URL): {text}", EXIT_BROKER_UNAVAILABLE)


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


def _register_commands() -> None:
    # The one place every command is attached to the group.
    from grant_worker.worker.cli.batch import batch
    from grant_worker.worker.cli.bulk.command import bulk
    from grant_worker.worker.cli.dlq import dlq
    from grant_worker.worker.cli.doctor import doctor_command
    from grant_worker.worker.cli.results import results
    from grant_worker.worker.cli.revoke import revoke
    from grant_worker.worker.cli.status import status_command
    from grant_worker.worker.cli.submit import submit
    from grant_worker.worker.cli.sync.command import sync
    from grant_worker.worker.cli.worker import worker

    # Commands whose libraries come with an optional extra: a stand-in naming it otherwise.
    dashboard = command_or_stand_in(_dashboard, "dashboard", "dashboard", "The operator's web page")
    emulator = command_or_stand_in(
        _emulator, "emulator", "emulator", "Run the local Auth0 Management API emulator"
    )
    demo = command_or_stand_in(
        _demo, "demo", "emulator", "The whole pipeline on one machine, on the emulator"
    )
    for command in (
        worker,
        submit,
        revoke,
        results,
        bulk,
        sync,
        dlq,
        batch,
        status_command,
        doctor_command,
        dashboard,
        emulator,
        demo,
    ):
        cli.add_command(command)


def _dashboard() -> click.Command:
    from grant_worker.worker.cli.dashboard import dashboard

    return dashboard


def _emulator() -> click.Command:
    from grant_worker.emulator.cli import emulator

    return emulator


def _demo() -> click.Command:
    from grant_worker.worker.cli.demo import demo

    return demo


_register_commands()


def main() -> None:
    cli()
