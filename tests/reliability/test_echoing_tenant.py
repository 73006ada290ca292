"""A tenant, or a proxy in front of it, that echoes what it receives: the client secret (in
the token request's form) and the bearer token come back in every field of its errors. None of
their forms may reach any sink: start-up stderr, `grants doctor --json`, JSON logs, outcomes
(their codes included), the results and dead streams, the breaker hash, `grants status
--json`, `grants results` / `dlq list`, and the dashboard's pages."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import redis
from click.testing import CliRunner
from starlette.testclient import TestClient

from grant_worker.config.settings import Settings
from grant_worker.tasks.keys import Keys
from grant_worker.worker.cli.main import cli
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.dashboard.app import create_app
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import next_client_id
from tests.reliability.test_security import JWT, everything_written

API = "https://api.example.com/"
# Characters that URL-, form- and base64-encoding all change.
SECRET = "s3cr+t/v@l ue=&%zz-echo-never-shown"


def forms(secret: str, client_id: str) -> list[str]:
    pair = f"{client_id}:{secret}".encode()
    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(pair).decode(),
        base64.b64encode(secret.encode()).decode().rstrip("="),
    ]


def assert_clean(name: str, text: str, client_id: str) -> None:
    for form in forms(SECRET, client_id):
        assert form not in text, f"{form!r} reached {name}"
    assert not JWT.search(text), f"a bearer token reached {name}: {JWT.search(text)}"


def grants(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=settings_env(settings))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output


@pytest.mark.timeout(180)
def test_nothing_an_echoing_tenant_repeats_reaches_any_sink(
    settings_factory: Callable[..., Settings],
    emulator: Any,
    redis_client: redis.Redis,
    key_prefix: str,
    queue_name: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    emulator.admin.rotate_secret(SECRET)
    # The session's emulator is shared: the tests after this one log in with the seed's secret.
    request.addfinalizer(lambda: emulator.admin.rotate_secret(emulator.client_secret))
    settings = settings_factory(
        auth0_client_secret=SECRET, grants_log_format="json", grants_retry_budget_s=2.0
    )
    client_id = settings.auth0_client_id or ""
    sinks: dict[str, str] = {}

    # The token request's echo: its form carries the secret URL-encoded.
    emulator.admin.set_faults(echo_rate=1.0, echo_status=401, apply_to_token_endpoint=True)
    doctor = grants(settings, "doctor", "--json")
    for line in doctor.splitlines():
        json.loads(line)  # still exact JSON
    sinks["grants doctor --json"] = doctor
    refused = WorkerProcess(settings, log_dir=tmp_path, loglevel="DEBUG")
    with pytest.raises(RuntimeError, match="exited with 2"):
        refused.start()
    sinks["start-up stderr"] = refused.log()
    assert "token request refused" in refused.log()

    # The Management API call's echo: the bearer token, raw and URL-encoded, in every field.
    # (Set once the worker is up: its start-up check would stop at the first echo.)
    emulator.admin.set_faults(echo_rate=0.0, apply_to_token_endpoint=False)
    worker = WorkerProcess(settings, log_dir=tmp_path, loglevel="DEBUG").start()
    emulator.admin.set_faults(echo_rate=1.0, echo_status=400)
    try:
        with GrantClient(settings) as producer:
            request_id = producer.submit(
                {"grant": {"client_id": next_client_id(), "audience": API}}
            )
            outcome = producer.wait(request_id, timeout_s=60)
            # A 401 opens the fleet's breaker, whose hash keeps the tenant's message.
            emulator.admin.set_faults(echo_status=401)
            producer.submit({"grant": {"client_id": next_client_id(), "audience": API}})
            deadline = time.monotonic() + 30
            while not redis_client.hget(Keys(key_prefix).breaker, "message"):
                assert time.monotonic() < deadline, "the breaker never opened"
                time.sleep(0.2)
    finally:
        worker.stop()
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.code == "bad_request"
    sinks["the outcome"] = outcome.to_json()
    sinks["JSON logs"] = worker.log()
    sinks["results, dead and breaker in Redis"] = everything_written(
        redis_client, key_prefix, queue_name
    )
    sinks["grants status --json"] = grants(settings, "status", "--json")
    sinks["grants results"] = grants(settings, "results")
    sinks["grants dlq list"] = grants(settings, "dlq", "list")
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8808") as page:
        for path in ("/", "/dead", f"/search?request_id={request_id}"):
            sinks[f"dashboard {path}"] = page.get(path).text

    # The echoes did come back, redacted.
    assert "you sent" in sinks["the outcome"]
    assert "you sent" in sinks["grants status --json"]
    for name, text in sinks.items():
        assert_clean(name, text, client_id)


def test_a_redacted_secret_never_leaves_its_head_at_the_cut() -> None:
    from grant_worker.tasks.auth0.translate import management_error

    token = "eyJhbGciOi.eyJzdWIiOi.signature-part-of-the-token"
    message = "x" * 490 + token
    error = management_error(400, {}, json.dumps({"message": message}), now_epoch_s=0.0,
                             secrets=(token,))  # fmt: skip
    assert "eyJhbGciOi" not in error.message
    assert "[redacted]" in error.message


@pytest.mark.parametrize(
    "echoed",
    [
        SECRET,
        quote(SECRET, safe=""),
        quote(SECRET, safe="").lower(),
        quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
        "Basic " + base64.b64encode(f"app-1:{SECRET}".encode()).decode(),
        base64.urlsafe_b64encode(f"app-1:{SECRET}".encode()).decode().rstrip("="),
    ],
)
@pytest.mark.parametrize("field", ["message", "errorCode", "error", "error_description"])
def test_every_field_of_an_answer_is_redacted_in_every_form(echoed: str, field: str) -> None:
    from grant_worker.tasks.auth0.translate import management_error, token_error

    body = json.dumps({"statusCode": 401, field: f"got {echoed} here"})
    for translate in (management_error, token_error):
        error = translate(401, {"Location": echoed}, body, now_epoch_s=0.0, secrets=(SECRET,),
                          client_id="app-1")  # fmt: skip
        shown = f"{error.message} {error.auth0_error_code}"
        assert_clean(translate.__name__, shown, "app-1")
        assert re.sub(r"[^a-z]", "", echoed.lower())[:8] not in shown.lower().replace(
            "redacted", ""
        )
