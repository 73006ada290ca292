"""grant_worker.emulator.testing: the interface the rest of the team builds on."""

from __future__ import annotations

import requests

from grant_worker.emulator.testing import running_emulator


def test_running_emulator_serves_on_a_free_port_with_the_worker_credentials() -> None:
    with running_emulator() as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        assert (emu.client_id, emu.client_secret) == ("grant-worker", "emulator-secret")
        health = requests.get(f"{emu.base_url}/__emulator/health", timeout=5)
        assert health.json() == {"status": "ok"}


def test_running_emulator_stops_listening_on_exit() -> None:
    with running_emulator() as emu:
        base_url = emu.base_url
    try:
        requests.get(f"{base_url}/__emulator/health", timeout=2)
    except requests.ConnectionError:
        return
    raise AssertionError("the emulator still answers after the context exited")
