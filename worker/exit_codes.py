"""Exit codes of every entry point (the `grants` command and the worker process), and the one
way an entry point ends on a usage or configuration error.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from grant_worker.config.settings import Settings, SettingsInvalid, load_settings
from grant_worker.worker.shown import shown

EXIT_DONE = 0  # created / exists / updated
EXIT_FAILED = 1  # failed or rejected
EXIT_USAGE = 2  # usage or configuration error
EXIT_TIMEOUT = 3  # timed out waiting
EXIT_BROKER_UNAVAILABLE = 4  # Redis unreachable, out of memory, read-only, loading
EXIT_STALLED = 70  # the worker's consumer stopped reading while Redis answers (EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C or SIGTERM, after a summary and how to resume

ERROR_PREFIX = "error: "


def report_error(message: str) -> None:
    """One line on stderr with the prefix every error line of every entry point shares; the
    message shown safely (`worker.shown`: it may quote a producer's or a tenant's text)."""
    print(f"{ERROR_PREFIX}{shown(message)}", file=sys.stderr, flush=True)


def fail(message: str, code: int) -> NoReturn:
    """`report_error`, then exit with `code`."""
    report_error(message)
    sys.exit(code)


def fail_usage(message: str) -> NoReturn:
    """One line on stderr, exit 2: the operator's mistake is not a crash."""
    fail(message, EXIT_USAGE)


def settings_or_exit(**overrides: Any) -> Settings:
    """Settings from the environment (and `overrides`), or exit 2 naming each variable."""
    try:
        return load_settings(**overrides)
    except SettingsInvalid as exc:
        fail_usage(f"configuration: {exc}")
