"""A held write is carried out late, whether or not its client waited: what makes a write
that timed out at the client dangerous (`POST /__emulator/late-writes`)."""

from __future__ import annotations

import time

import pytest
import requests

from grant_worker.emulator.testing import AdminError, RunningEmulator
from tests.emulator.helpers import Api

API = "https://api.example.com/"


def _grant(api: Api, scope: list[str]) -> str:
    response = api.create({"client_id": "svc-00001", "audience": API, "scope": scope})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _scopes(api: Api, grant_id: str) -> list[str]:
    return list(api.get(grant_id).json()["scope"])


def test_a_held_patch_is_applied_after_its_client_gave_up_and_only_then(
    emu: RunningEmulator, api: Api
) -> None:
    grant_id = _grant(api, ["read:things"])
    emu.admin.hold_writes(1.5, reply="never")
    sent_at = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        api.session.patch(
            f"{api.base}/{grant_id}", json={"scope": ["read:things", "a"]}, timeout=0.5
        )
    assert _scopes(api, grant_id) == ["read:things"], "applied before its time"
    while _scopes(api, grant_id) == ["read:things"]:
        assert time.monotonic() - sent_at < 5, "never applied"
        time.sleep(0.05)
    assert time.monotonic() - sent_at >= 1.5
    assert _scopes(api, grant_id) == ["read:things", "a"]
    assert emu.admin.stats()["late_writes"] == 1


def test_only_the_next_count_writes_are_held_and_a_late_reply_still_comes(
    emu: RunningEmulator, api: Api
) -> None:
    grant_id = _grant(api, ["read:things"])
    emu.admin.hold_writes(0.5)
    started = time.monotonic()
    late = api.update(grant_id, {"scope": ["read:things", "a"]})
    assert late.status_code == 200 and time.monotonic() - started >= 0.5
    started = time.monotonic()
    prompt = api.update(grant_id, {"scope": ["read:things", "b"]})
    assert prompt.status_code == 200 and time.monotonic() - started < 0.5
    assert _scopes(api, grant_id) == ["read:things", "b"]


def test_a_hold_names_a_write_method_and_a_positive_delay(emu: RunningEmulator) -> None:
    with pytest.raises(AdminError):
        emu.admin.hold_writes(1.0, method="GET")
    with pytest.raises(AdminError):
        emu.admin.hold_writes(0)
