"""The `grants` command: a thin click group over library functions.

Exit codes (DESIGN.md): 0 done, 1 failed or rejected, 2 usage or config error, 3 timed out.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Provision Auth0 client grants from a Redis queue."""


def _register_subcommands() -> None:
    from emulator.cli import emulator

    cli.add_command(emulator)


_register_subcommands()


def main() -> None:
    cli()
