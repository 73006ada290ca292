"""Test helpers shipped with the product: an emulator in a background thread, and a client
of its admin API.

    from grant_worker.emulator.testing import running_emulator

    with running_emulator() as emu:
        os.environ["AUTH0_DOMAIN"] = emu.base_url          # http://127.0.0.1:PORT
        ...                                               # emu.client_id / emu.client_secret
        emu.admin.set_faults(error_rate=0.2)
        assert emu.admin.stats()["posts_by_grant_key"] == {...}
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from grant_worker.emulator.config import EmulatorConfig
from grant_worker.emulator.server import BackgroundServer
from grant_worker.emulator.state import Emulator

ADMIN_TIMEOUT_S = 10.0


class AdminError(RuntimeError):
    """Raised when the admin API refuses a call (bad settings, bad seed...)."""


class EmulatorAdmin:
    """A small requests-based client of the emulator's /__emulator/ API."""

    def __init__(self, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}/__emulator{path}",
            json=body,
            timeout=ADMIN_TIMEOUT_S,
        )
        if response.status_code >= 400:
            raise AdminError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def stats(self) -> dict[str, Any]:
        """Counters: requests_total, requests_by_status {"201": n}, rate_limited, grants,
        posts_by_grant_key {"client_id|audience|subject_type": n}, max_in_flight, ...
        (all keys: emulator.stats)."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def grants(self) -> list[dict[str, Any]]:
        """Every stored grant, as the Management API returns it, in creation order."""
        result: list[dict[str, Any]] = self._call("GET", "/grants")
        return result

    def reset(self) -> None:
        """Drop grants and counters; faults, rate limit and token lifetime back to the
        start-up config. The tenant and issued tokens stay."""
        self._call("POST", "/reset")

    def settings(self) -> dict[str, Any]:
        """The current {"faults", "rate_limit", "token_lifetime_s"}."""
        result: dict[str, Any] = self._call("GET", "/settings")
        return result

    def set_faults(self, **changes: Any) -> None:
        """Change some fault settings, e.g. error_rate=0.1, drop_rate=0.05,
        commit_lost_rate=0.05, commit_lost_reply="drop", hang_rate=0.01, hang_s=5,
        latency_ms=20, jitter_ms=10, error_status=503, apply_to_token_endpoint=True.
        Rates are shares of requests (sum ≤ 1). Raises AdminError."""
        self._call("POST", "/faults", changes)

    def set_rate_limit(
        self,
        rate: float | None,
        burst: int | None,
        retry_after: bool = False,
        *,
        reset_semantics: str = "full",
        absurd_reset: str | None = None,
    ) -> None:
        """One tenant-wide bucket of `burst` requests refilled at `rate` per second;
        rate None = no practical limit. The bucket starts full. `reset_semantics`: "full" or
        "next"; `absurd_reset`: "far", "milliseconds" or "past". Raises AdminError."""
        self._call(
            "PUT",
            "/rate-limit",
            {
                "rate_per_s": rate,
                "burst": burst if rate is not None else None,
                "retry_after": retry_after,
                "reset_semantics": reset_semantics,
                "absurd_reset": absurd_reset,
            },
        )

    def set_token_lifetime(self, seconds: float) -> None:
        """Lifetime of tokens issued from now on, in seconds (0: expired at once)."""
        self._call("PUT", "/token-lifetime", {"seconds": seconds})

    def add_clients(self, clients: list[dict[str, Any]]) -> None:
        """Add or replace clients, in the seed format ({"client_id", "app_type", ...})."""
        self._call("POST", "/clients", clients)

    def add_resource_servers(self, rs: list[dict[str, Any]]) -> None:
        """Add or replace resource servers ({"identifier", "name", "scopes"})."""
        self._call("POST", "/resource-servers", rs)

    def reseed(self, seed: dict[str, Any]) -> None:
        """Replace the whole tenant with `seed` (seed format) and drop every grant."""
        self._call("PUT", "/seed", seed)

    def start_outage(self, seconds: float, mode: str = "error") -> None:
        """Every Auth0 call fails for `seconds`: "error" (503), "drop" or "hang"."""
        self._call("POST", "/outage", {"seconds": seconds, "mode": mode})

    def end_outage(self) -> None:
        self._call("DELETE", "/outage")

    def hold_writes(
        self, apply_after_s: float, *, method: str = "PATCH", count: int = 1, reply: str = "late"
    ) -> None:
        """Carry the next `count` writes of `method` out `apply_after_s` after they arrive,
        the client gone or not; then answer them ("late") or not ("never")."""
        body = {"method": method, "count": count, "apply_after_s": apply_after_s, "reply": reply}
        self._call("POST", "/late-writes", body)

    def rotate_secret(self, new_secret: str, client_id: str | None = None) -> None:
        """Change the worker's (or `client_id`'s) secret; issued tokens stay valid."""
        self._call("POST", "/rotate-secret", {"client_secret": new_secret, "client_id": client_id})

    def revoke_tokens(self) -> None:
        """Refuse every token issued so far."""
        self._call("POST", "/revoke-tokens")

    def set_worker_scopes(self, scopes: list[str], client_id: str | None = None) -> None:
        """The Management API scopes new tokens of the worker (or `client_id`) carry."""
        self._call("PUT", "/worker-scopes", {"scopes": scopes, "client_id": client_id})

    def set_background(self, rps: float) -> None:
        """Other applications of the tenant spend `rps` calls/s from its bucket."""
        self._call("PUT", "/background", {"rps": rps})

    def close(self) -> None:
        self.session.close()


@dataclass
class RunningEmulator:
    base_url: str  # "http://127.0.0.1:PORT": what goes in AUTH0_DOMAIN
    client_id: str  # the worker's M2M client id ("grant-worker" in the default seed)
    client_secret: str
    admin: EmulatorAdmin

    @property
    def management_audience(self) -> str:
        """The Management API audience as SDKs build it: https://{domain}/api/v2/."""
        return f"https://{self.base_url.split('://', 1)[1]}/api/v2/"


@contextlib.contextmanager
def running_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEmulator]:
    """Run an emulator on a background thread with its own event loop (port 0 = a free
    port); stop it cleanly on exit. Raises OSError if the port cannot be bound."""
    emulator = Emulator(config)
    worker = emulator.worker_client
    server = BackgroundServer(emulator, host, port)
    bound_port = server.start()
    shown_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown_host}:{bound_port}"
    admin = EmulatorAdmin(base_url)
    try:
        yield RunningEmulator(
            base_url=base_url,
            client_id=worker.client_id,
            client_secret=worker.client_secret or "",
            admin=admin,
        )
    finally:
        admin.close()
        server.stop()


def start_emulator_process(
    port: int, *options: str, ready_within_s: float = 20.0
) -> subprocess.Popen[bytes]:
    """`python -m grant_worker.emulator --port PORT OPTIONS…` in a process of its own (so that
    a load generator does not share its GIL), returned once its admin API answers.

    Raises the admin API's last error, the process killed, when it does not answer in time.
    """
    command = [sys.executable, "-m", "grant_worker.emulator", "--port", str(port), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    admin = EmulatorAdmin(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + ready_within_s
    while True:
        try:
            admin.stats()
            return process
        except Exception:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.1)
