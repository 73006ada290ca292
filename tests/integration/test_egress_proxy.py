"""Calls to Auth0 go through the egress proxy the standard variables name: the worker's, the
doctor's and the bulk plan's. A real forwarding proxy on loopback sees them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from grant_worker.config.settings import Settings
from grant_worker.worker.client.grant_client import GrantClient
from grant_worker.worker.testing import WorkerProcess
from tests.forward_proxy import ForwardProxy
from tests.integration.conftest import grants, next_client_id

API = "https://api.example.com/"


def test_the_worker_calls_auth0_through_http_proxy(
    settings_factory: Callable[..., Settings], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = settings_factory()
    with ForwardProxy() as proxy:
        start_worker(settings, extra_env={"HTTP_PROXY": proxy.url})
        with GrantClient(settings) as client:
            request_id = client.submit({"grant": {"client_id": next_client_id(), "audience": API}})
            outcome = client.wait(request_id, timeout_s=30)
        assert outcome.status == "created", outcome
        assert "/oauth/token" in proxy.paths()
        assert ("POST", f"{settings.auth0_base_url}/api/v2/client-grants") in proxy.seen


def test_doctor_goes_through_the_proxy_and_says_so(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    with ForwardProxy() as proxy:
        done = grants(settings, "doctor", "--json", http_proxy=proxy.url)
        checks = {(c["area"], c["name"]): c for c in map(json.loads, done.stdout.splitlines())}
        assert checks[("tenant", "token")]["verdict"] == "pass", checks[("tenant", "token")]
        assert "through the proxy 127.0.0.1:" in checks[("tenant", "token")]["detail"]
        assert checks[("tenant", "api")]["verdict"] == "pass"
        assert {"/oauth/token", "/api/v2/client-grants"} <= set(proxy.paths())


def test_no_proxy_sends_the_tenant_direct(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    with ForwardProxy() as proxy:
        done = grants(settings, "doctor", "--json", HTTP_PROXY=proxy.url, NO_PROXY="127.0.0.1")
        checks = {(c["area"], c["name"]): c for c in map(json.loads, done.stdout.splitlines())}
        assert checks[("tenant", "api")]["verdict"] == "pass"
        assert proxy.seen == []


def test_bulk_plan_reads_the_tenant_through_the_proxy(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"grant": {"client_id": next_client_id(), "audience": API}}) + "\n")
    with ForwardProxy() as proxy:
        done = grants(settings, "bulk", str(rows), "--plan", HTTP_PROXY=proxy.url)
        assert done.returncode == 0, done.stderr
        assert "/api/v2/client-grants" in proxy.paths()
