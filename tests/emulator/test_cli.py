"""`grants emulator` / `python -m emulator`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from click.testing import CliRunner

from grant_worker.emulator.cli import emulator


def test_the_help_lists_the_condition_options() -> None:
    result = CliRunner().invoke(emulator, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--seed",
        "--rate-limit",
        "--burst",
        "--retry-after",
        "--latency-ms",
        "--jitter-ms",
        "--fault-5xx-rate",
        "--fault-drop-rate",
        "--fault-commit-lost-rate",
        "--fault-hang-rate",
        "--hang-s",
        "--token-lifetime-s",
    ):
        assert option in result.output


def test_a_burst_without_a_rate_is_a_usage_error() -> None:
    result = CliRunner().invoke(emulator, ["--burst", "5"])
    assert result.exit_code == 2


def test_fault_rates_adding_up_to_more_than_one_are_a_usage_error() -> None:
    result = CliRunner().invoke(emulator, ["--fault-5xx-rate", "0.7", "--fault-drop-rate", "0.7"])
    assert result.exit_code == 2
    assert "more than 1" in result.output


def test_an_invalid_seed_file_is_a_usage_error(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("clientz: []\n")
    result = CliRunner().invoke(emulator, ["--seed", str(seed)])
    assert result.exit_code == 2


def test_python_m_emulator_prints_the_credentials_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "grant_worker.emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = dict(process.stdout.readline().strip().split("=", 1) for _ in range(3))
        assert (lines["AUTH0_CLIENT_ID"], lines["AUTH0_CLIENT_SECRET"]) == (
            "grant-worker",
            "emulator-secret",
        )
        health = requests.get(f"{lines['AUTH0_DOMAIN']}/__emulator/health", timeout=5)
        assert health.json() == {"status": "ok"}
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
