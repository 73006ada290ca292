"""`grants doctor` and the worker's start-up name the real cause of a tenant that does not
answer, with its own fix: DNS, a closed port, an outage, refused credentials."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from grant_worker.config.settings import Settings
from grant_worker.worker.testing import WorkerProcess, settings_env


def doctor(settings: Settings, **env: str) -> dict[tuple[str, str], dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "grant_worker.worker", "doctor", "--json"],
        env={**os.environ, **settings_env(settings), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return {(c["area"], c["name"]): c for c in map(json.loads, done.stdout.splitlines())}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unknown_domain_is_a_dns_failure_not_bad_credentials(
    settings_factory: Callable[..., Settings],
) -> None:
    token = doctor(settings_factory(auth0_domain="nosuch-tenant.invalid"))[("tenant", "token")]
    assert token["verdict"] == "fail"
    assert "nosuch-tenant.invalid:443" in token["detail"] and "DNS" in token["detail"]
    assert "AUTH0_DOMAIN" in token["fix"]
    assert "AUTH0_CLIENT_SECRET" not in token["fix"]


def test_a_closed_port_is_named_with_host_and_port(
    settings_factory: Callable[..., Settings],
) -> None:
    port = closed_port()
    token = doctor(settings_factory(auth0_domain=f"http://127.0.0.1:{port}"))[("tenant", "token")]
    assert f"connection refused by 127.0.0.1:{port}" in token["detail"]
    assert "AUTH0_CLIENT_SECRET" not in token["fix"]


def test_a_503_points_to_auth0s_status_page(
    settings_factory: Callable[..., Settings], emulator: Any
) -> None:
    emulator.admin.start_outage(60, mode="error")
    try:
        token = doctor(settings_factory())[("tenant", "token")]
    finally:
        emulator.admin.end_outage()
    assert "503" in token["detail"]
    assert "status.auth0.com" in token["fix"]
    assert "AUTH0_CLIENT_SECRET" not in token["fix"]


def test_refused_credentials_still_point_to_the_credentials(
    settings_factory: Callable[..., Settings],
) -> None:
    token = doctor(settings_factory(auth0_client_secret="wrong"))[("tenant", "token")]
    assert "401" in token["detail"]
    assert "AUTH0_CLIENT_ID / AUTH0_CLIENT_SECRET" in token["fix"]


def test_a_token_without_the_management_api_grant_says_to_authorize_it(
    settings_factory: Callable[..., Settings], emulator: Any
) -> None:
    settings = settings_factory(auth0_audience="https://api.example.com/")
    token = doctor(settings)[("tenant", "token")]
    assert "403" in token["detail"]
    assert "authorize the application for the Auth0 Management API" in token["fix"]


def test_the_worker_names_a_closed_port_at_start_up(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    port = closed_port()
    settings = settings_factory(auth0_domain=f"http://127.0.0.1:{port}")
    worker = WorkerProcess(settings, log_dir=tmp_path)
    try:
        worker.start()
        assert f"connection refused by 127.0.0.1:{port}" in worker.log()
        assert "fix: check the host and port in AUTH0_DOMAIN" in worker.log()
    finally:
        worker.stop(timeout_s=10)


@pytest.mark.parametrize("secret", ["wrong-secret"])
def test_the_worker_refuses_wrong_credentials_naming_them(
    settings_factory: Callable[..., Settings], tmp_path: Path, secret: str
) -> None:
    worker = WorkerProcess(settings_factory(auth0_client_secret=secret), log_dir=tmp_path)
    with pytest.raises(RuntimeError, match="exited with 2"):
        worker.start(ready_timeout_s=30)
    assert "error: the tenant refused the worker's credentials" in worker.log()
    assert "AUTH0_CLIENT_ID / AUTH0_CLIENT_SECRET" in worker.log()
    assert secret not in worker.log()
