"""Fixtures for the emulator's own tests: one emulator per module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from grant_worker.emulator.testing import RunningEmulator, running_emulator
from tests.emulator.helpers import Api, fetch_token


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[RunningEmulator]:
    with running_emulator() as emu:
        yield emu


@pytest.fixture
def emu(shared_emulator: RunningEmulator) -> RunningEmulator:
    """The module's emulator with no grants, counters at zero and start-up settings."""
    shared_emulator.admin.reset()
    return shared_emulator


@pytest.fixture(scope="module")
def worker_token(shared_emulator: RunningEmulator) -> str:
    """A token with all four client_grants scopes (tokens survive reset)."""
    return fetch_token(shared_emulator)


@pytest.fixture
def api(emu: RunningEmulator, worker_token: str) -> Api:
    return Api(emu, worker_token)
