"""Every error line of the `grants` command starts with the same `error: ` prefix, click's own
usage errors included, and keeps its exit code. Real `grants` processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from grant_worker.config.settings import Settings
from grant_worker.worker.testing import settings_env


def grants(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grant_worker.worker", *args],
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "rror" in line and line.strip()]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["submit", "--bogus"], "No such option"),
        (["--bogus"], "No such option"),
        (["results", "--limit", "many"], "'many' is not a valid integer"),
        (["bulk"], "Missing argument 'FILE'"),
        (["dlq", "list", "--nope"], "No such option"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["emulator", "--burst", "5"], "--burst needs --rate-limit"),
    ],
    ids=["option", "group-option", "bad-value", "argument", "subgroup", "command", "emulator"],
)
def test_a_usage_error_says_error_and_exits_2(
    settings: Settings, args: list[str], says: str
) -> None:
    done = grants(settings, *args)
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert line.startswith("error: ") and says in line
    assert "Error:" not in done.stderr
