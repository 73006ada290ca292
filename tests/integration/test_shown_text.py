"""What producers control (batch ids, metadata, the tenant's messages) reaches people through
the `grants` commands: it can neither forge text on a terminal nor become markup, and JSON
output stays exact JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from grant_worker.config.settings import Settings
from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.keys import Keys
from grant_worker.tasks.messages.models import ErrorInfo, Outcome, utc_timestamp
from grant_worker.tasks.messages.validation import parse_request
from grant_worker.tasks.outcomes.recorder import make_recorder
from grant_worker.worker.cli.main import cli
from grant_worker.worker.testing import settings_env

# An OSC sequence that sets the terminal's title, CSI as one C1 byte, a right-to-left override.
TITLE = "\x1b]0;pwned\x07"
FORGERIES = ("\x1b", "\x07", "\x9b", "\x85", "\u202e", "\u2066")
LINK = "[link=https://evil.example/]https://good.example/[/link]"


def grants(settings: Settings, *args: str) -> Result:
    env = {**settings_env(settings), "COLUMNS": "300"}
    return CliRunner().invoke(cli, list(args), env=env)


def assert_nothing_forged(text: str) -> None:
    for char in FORGERIES:
        assert char not in text, f"{char!r} reached the output: {text!r}"


def ledger(client: redis.Redis, settings: Settings, batch_id: str) -> None:
    """A batch ledger planted under `batch_id` past the checks a request's batch id meets, as a
    ledger written by hand can be: what is shown must still be safe to print."""
    keys = Keys(settings.grants_key_prefix)
    client.hset(keys.batch(batch_id), mapping={"total": 2, "queued": 2})
    client.zadd(keys.batches, {batch_id: time.time()})


@pytest.mark.parametrize(
    "batch_id", ["a b", "x" * 129, f"t{TITLE}", "rtl\u202egpj.exe", "", "ok\n", "é"]
)
def test_a_batch_id_outside_the_request_id_rule_is_invalid(batch_id: str) -> None:
    request = {"grant": {"client_id": "c", "audience": "https://a/"}, "batch_id": batch_id}
    with pytest.raises(RequestInvalid) as caught:
        parse_request(request)
    assert any(problem.startswith("batch_id") for problem in caught.value.problems)


def test_batch_list_and_status_show_control_characters_as_escapes(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis
) -> None:
    settings = settings_factory()
    evil = f"b{TITLE}\x9b2J\u202e"
    ledger(redis_client, settings, evil)
    for args in (("batch", "list"), ("batch", "status", evil)):
        result = grants(settings, *args)
        assert result.exit_code == 0, result.output
        assert_nothing_forged(result.output)
        assert "b\\x1b]0;pwned\\x07\\x9b2J\\u202e" in result.output
    listed = grants(settings, "batch", "list", "--json")
    assert_nothing_forged(listed.output)
    assert json.loads(listed.output)["batch_id"] == evil


def test_status_never_reads_a_batch_id_as_rich_markup(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis
) -> None:
    settings = settings_factory()
    ledger(redis_client, settings, LINK)
    ledger(redis_client, settings, f"t{TITLE}\u202e")
    result = grants(settings, "status")
    assert result.exit_code == 0, result.output
    assert LINK in result.output  # shown as the text it is
    assert "\x1b]8;" not in result.output  # and never made a hyperlink
    assert "t\\x1b]0;pwned\\x07\\u202e" in result.output
    as_json = grants(settings, "status", "--json")
    assert_nothing_forged(as_json.output)
    shown = {batch["batch_id"] for batch in json.loads(as_json.output)["batches"]}
    assert shown == {LINK, f"t{TITLE}\u202e"}


def test_results_write_c1_and_bidi_controls_as_json_escapes(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis
) -> None:
    settings = settings_factory()
    metadata: dict[str, Any] = {"note": f"paid\u202e{TITLE}\x85\x9b\u2066", "é": "ünïcödé"}
    outcome = Outcome(
        request_id="shown-1",
        status="failed",
        error=ErrorInfo(code="bad_request", message="tenant said \x1b[31mred\u202e"),
        metadata=metadata,
        attempts=1,
        received_at=utc_timestamp(),
        finished_at=utc_timestamp(),
    )
    original = {"request_id": "shown-1", "metadata": metadata}
    assert make_recorder(settings, redis_client).record(outcome, original=original)
    for args in (("results",), ("results", "--request-id", "shown-1"), ("dlq", "list")):
        result = grants(settings, *args)
        assert result.exit_code == 0, result.output
        assert_nothing_forged(result.output)
        line = json.loads(result.output.splitlines()[0])
        if args[0] == "results":
            assert "ünïcödé" in result.output  # readable text stays as it is
            assert line["metadata"] == metadata
            assert line["error"]["message"] == "tenant said \x1b[31mred\u202e"
    shown = grants(settings, "dlq", "show", "shown-1")
    assert_nothing_forged(shown.output)
    assert json.loads(shown.output)["request"]["metadata"] == metadata


def test_an_error_line_quoting_the_tenant_or_what_was_typed_has_one_prefix_and_no_controls(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis
) -> None:
    settings = settings_factory()
    outcome = Outcome(
        request_id="shown-reused",
        status="failed",
        error=ErrorInfo(code="bad_request", message=f"tenant said {TITLE}\u202e"),
        attempts=1,
        received_at=utc_timestamp(),
        finished_at=utc_timestamp(),
    )
    assert make_recorder(settings, redis_client).record(outcome, original={})
    # The refusal of a reused id quotes the tenant's message; a command's own usage error
    # quotes what was typed: both through the one error helper.
    for args, code in (
        (["submit", "--audience", "https://api/", "--client-id", "c-1",
          "--request-id", "shown-reused"], 1),
        (["revoke", "--grant-id", "cgr_1", "--request-id", "shown-reused"], 1),
        (["results", "--since", f"1h{TITLE}\u202e"], 2),
    ):  # fmt: skip
        result = grants(settings, *args)
        assert result.exit_code == code, result.output
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: ") and line.count("error: ") == 1
        assert_nothing_forged(result.stderr)
        assert "\\x1b" in line
