"""Settings warnings and errors speak in environment variables, from every source."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from grant_worker.config import settings as settings_module
from grant_worker.config.settings import Settings, SettingsInvalid, load_settings
from grant_worker.worker.cli.doctor import check_configuration


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Warnings are given once per process; each test starts with none given.
    monkeypatch.setattr(settings_module, "_warned", set())


def test_a_misspelt_name_in_the_env_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GRANTS_CONCURENCY=2\n")
    with caplog.at_level(logging.WARNING):
        Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert (
        "unknown setting GRANTS_CONCURENCY (in .env) is ignored; did you mean GRANTS_CONCURRENCY?"
        in caplog.text
    )


def test_the_doctor_lists_a_misspelt_name_in_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("GRANTS_RETRY_BUDGET=5\n")
    monkeypatch.chdir(tmp_path)
    checks, _ = check_configuration({})
    (unknown,) = [check for check in checks if check.name == "unknown variable"]
    assert "GRANTS_RETRY_BUDGET (in .env)" in unknown.detail
    assert "GRANTS_RETRY_BUDGET_S" in unknown.detail


@pytest.mark.parametrize(("given", "level"), [("info", "INFO"), ("Debug", "DEBUG")])
def test_the_log_level_is_taken_in_any_case(given: str, level: str) -> None:
    assert Settings(_env_file=None, grants_log_level=given).grants_log_level == level  # type: ignore[call-arg]


def test_the_log_format_is_taken_in_any_case() -> None:
    assert Settings(_env_file=None, grants_log_format="JSON").grants_log_format == "json"  # type: ignore[call-arg]


def test_a_rule_across_settings_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH0_DOMAIN", "http://tenant.example.com")
    with pytest.raises(SettingsInvalid) as raised:
        load_settings()
    assert str(raised.value).startswith("AUTH0_DOMAIN: plain http")
    assert "auth0_domain" not in str(raised.value)


def test_the_doctor_names_the_variable_without_a_request_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRANTS_HEARTBEAT_TTL_S", "1")
    monkeypatch.setenv("GRANTS_CONCURRENCY", "0")
    checks, settings = check_configuration({})
    assert settings is None
    (failed,) = checks
    assert "request" not in failed.detail
    assert "GRANTS_CONCURRENCY: Input should be greater than or equal to 1" in failed.detail
