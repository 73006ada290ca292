"""Every error line of the `grants` command starts with the same `error: ` prefix, click's own
usage errors included, and keeps its exit code. Real `grants` processes."""

from __future__ import annotations

import pytest

from grant_worker.config.settings import Settings
from tests.integration.conftest import grants


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
