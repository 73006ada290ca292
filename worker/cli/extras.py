"""Commands that need an optional extra of the package (`grant-worker[dashboard]`,
`grant-worker[emulator]`): registered as themselves when the extra is installed, otherwise as a
stand-in that says, in one line, what to install.

A plain `pip install grant-worker` carries what producers and workers need; the dashboard's
web stack and the emulator's aiohttp come only when asked for.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import click

from grant_worker.worker.exit_codes import fail_usage

# The modules each extra of pyproject.toml brings (their import names).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "dashboard": ("starlette", "jinja2", "uvicorn", "multipart", "itsdangerous"),
    "emulator": ("aiohttp", "yaml"),
}


def missing_modules(extra: str, find: Callable[[str], object] | None = None) -> list[str]:
    """The modules of `extra` that cannot be imported here."""
    find = find or importlib.util.find_spec
    return [name for name in EXTRA_MODULES[extra] if find(name) is None]


def install_hint(extra: str) -> str:
    return f"pip install 'grant-worker[{extra}]'"


def needs_extra(name: str, extra: str, summary: str) -> click.Command:
    """A stand-in for the command `name`: any arguments, exit 2 naming the extra."""

    @click.command(
        name,
        help=f"{summary} (needs the [{extra}] extra: {install_hint(extra)})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    def stand_in() -> None:
        fail_usage(f"grants {name} needs the [{extra}] extra: {install_hint(extra)}")

    return stand_in


def command_or_stand_in(
    load: Callable[[], click.Command], name: str, extra: str, summary: str
) -> click.Command:
    """`load()` when every module of `extra` is installed, else the stand-in."""
    if missing_modules(extra):
        return needs_extra(name, extra, summary)
    return load()
