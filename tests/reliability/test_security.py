"""Secrets stay secret through failures of every kind; Redis with a password and an ACL user;
TLS and the tenant are never up to a message."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.session import make_session
from grant_worker.tasks.errors import RequestInvalid
from grant_worker.tasks.messages.validation import parse_request
from grant_worker.worker.cli.main import cli
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess, settings_env
from tests.integration.conftest import next_client_id
from tests.local_redis import RedisServer

API = "https://api.example.com/"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")


def everything_written(client: redis.Redis, prefix: str, queue: str) -> str:
    """Every value under the prefix and on the queue, as one text to scan."""
    parts: list[str] = []
    for key in list(client.scan_iter(f"{prefix}*")) + list(client.scan_iter(f"*{queue}*")):
        kind = client.type(key)
        if kind == "string":
            parts.append(str(client.get(key)))
        elif kind == "stream":
            parts.extend(str(fields) for _id, fields in client.xrange(key))
        elif kind == "list":
            parts.extend(client.lrange(key, 0, -1))
        elif kind == "hash":
            parts.extend(str(v) for v in client.hgetall(key).values())
    return "\n".join(parts)


@pytest.mark.slow
def test_no_secret_or_token_appears_in_logs_outcomes_or_dead_letters_whatever_fails(
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    emulator: Any,
    redis_client: Any,
    key_prefix: str,
    queue_name: str,
    tmp_path: Path,
) -> None:
    good = settings_factory(grants_retry_budget_s=1.0)
    wrong_secret = settings_factory(auth0_client_secret="wrong-secret-value-123")
    reader = settings_factory(auth0_client_id="grant-reader", auth0_client_secret="reader-secret")
    logs: list[WorkerProcess] = []

    def run(settings: Settings, *requests: dict[str, Any], wait: bool = True) -> None:
        worker = start_worker(settings, loglevel="DEBUG")
        logs.append(worker)
        with GrantClient(settings) as client:
            ids = client.submit_many(requests)
            if wait:
                list(client.wait_many(ids, timeout_s=60))
            else:
                time.sleep(2.0)  # the request waits on the queue; its worker stops
        worker.stop()

    def req(**grant: Any) -> dict[str, Any]:
        return {"grant": {"client_id": next_client_id(), "audience": API, **grant}}

    conflict = req()
    run(good, conflict)
    run(
        good,
        req(),
        {**conflict, "on_conflict": "fail"},
        req(audience="https://nowhere.example.com/"),
        {"grant": {"client_id": "app-express", "audience": API}},
    )
    # Tenant faults open the fleet's breaker: requests wait, and the breaker's own records
    # and ERROR lines must not carry a secret either.
    emulator.admin.set_faults(error_rate=1.0)
    run(good, req(), wait=False)
    emulator.admin.set_faults(error_rate=0.0, drop_rate=1.0)
    run(good, req(), wait=False)
    emulator.admin.set_faults(drop_rate=0.0)
    refused = WorkerProcess(wrong_secret, log_dir=tmp_path, loglevel="DEBUG")
    with pytest.raises(RuntimeError, match="exited with 2"):
        refused.start()
    logs.append(refused)
    run(reader, req(), wait=False)
    # Last: a 429 pauses the whole fleet (all workers on this key prefix) until its reset.
    emulator.admin.set_rate_limit(0.01, 1)
    run(good, req(), req(), wait=False)

    with GrantClient(good) as client:
        codes = {o.error.code for o in client.results() if o.error}
    assert codes >= {"conflict", "not_found", "bad_request"}
    written = everything_written(redis_client, key_prefix, queue_name)
    texts = {"redis": written, **{w.log_path.name: w.log() for w in logs}}
    for name, text in texts.items():
        for secret in ("emulator-secret", "reader-secret", "wrong-secret-value-123"):
            assert secret not in text, f"{secret!r} leaked into {name}"
        assert not JWT.search(text), f"a bearer token leaked into {name}"


def test_a_worker_works_through_redis_with_a_password_and_an_acl_user(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    server = RedisServer(
        tmp_path,
        extra_args=[
            "--requirepass",
            "admin-pass-987",
            "--user",
            "grants",
            "on",
            ">acl-pass-654",
            "~*",
            "&*",
            "+@all",
        ],
    ).start(password="admin-pass-987")
    try:
        url = f"redis://grants:acl-pass-654@127.0.0.1:{server.port}/0"
        settings = settings_factory(redis_url=url)
        worker = start_worker(settings)
        with GrantClient(settings) as client:
            request_id = client.submit({"grant": {"client_id": next_client_id(), "audience": API}})
            assert client.wait(request_id, timeout_s=30).status == "created"
        worker.stop()
        assert "acl-pass-654" not in worker.log()

        wrong = settings_env(settings_factory(redis_url=url.replace("acl-pass-654", "nope-321")))
        result = CliRunner().invoke(cli, ["results"], env=wrong)
        assert result.exit_code == 2
        assert "nope-321" not in result.output
        assert "Redis" in result.output
    finally:
        server.stop()


def test_tls_verification_is_always_on(settings: Settings) -> None:
    assert make_session(settings).verify is True


@pytest.mark.parametrize("field", ["domain", "tenant", "base_url", "auth0_domain"])
def test_a_message_cannot_name_the_tenant(field: str) -> None:
    with pytest.raises(RequestInvalid, match="unknown field"):
        parse_request({"grant": {"client_id": "c", "audience": API}, field: "evil.example.com"})


def test_rediss_verifies_the_brokers_certificate(
    settings_factory: Callable[..., Settings],
) -> None:
    import ssl

    from grant_worker.tasks.connections import make_redis
    from grant_worker.worker.process.app import celery_config

    settings = settings_factory(redis_url="rediss://grants:pw@redis.example.com:6380/0")
    # kombu's own default for rediss:// is CERT_NONE; ours is to verify.
    assert celery_config(settings)["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    kwargs = make_redis(settings).connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "required"
