"""Small HTTP helpers for the emulator's tests (plain module: conftest is not for importing)."""

from __future__ import annotations

from typing import Any

import requests

from grant_worker.emulator.testing import RunningEmulator


def fetch_token(
    emu: RunningEmulator, client_id: str | None = None, secret: str | None = None
) -> str:
    response = requests.post(
        f"{emu.base_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id or emu.client_id,
            "client_secret": secret or emu.client_secret,
            "audience": emu.management_audience,
        },
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


class Api:
    """A thin requests client of the emulated Management API, for readable tests."""

    def __init__(self, emu: RunningEmulator, token: str) -> None:
        self.base = f"{emu.base_url}/api/v2/client-grants"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def create(self, body: Any, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base, json=body, timeout=10, **kwargs)

    def list(self, **params: Any) -> requests.Response:
        return self.session.get(self.base, params=params, timeout=10)

    def get(self, grant_id: str) -> requests.Response:
        return self.session.get(f"{self.base}/{grant_id}", timeout=10)

    def update(self, grant_id: str, body: Any) -> requests.Response:
        return self.session.patch(f"{self.base}/{grant_id}", json=body, timeout=10)

    def delete(self, grant_id: str) -> requests.Response:
        return self.session.delete(f"{self.base}/{grant_id}", timeout=10)
