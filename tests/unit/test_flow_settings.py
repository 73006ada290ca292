"""GRANTS_RATE_LIMIT is "auto" or a number; secrets may come from mounted files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from grant_worker.config.settings import Settings
from grant_worker.tasks.auth0.secrets import (
    Credentials,
    FileWatch,
    SecretFileError,
    load_secrets,
    read_secret_file,
)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_rate_is_auto_by_default() -> None:
    assert settings().grants_rate_limit == "auto"


@pytest.mark.parametrize(
    ("given", "read"), [("auto", "auto"), ("AUTO", "auto"), ("20", 20.0), ("0", 0.0)]
)
def test_the_rate_is_auto_or_a_number_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, given: str, read: object
) -> None:
    monkeypatch.setenv("GRANTS_RATE_LIMIT", given)
    assert settings().grants_rate_limit == read


@pytest.mark.parametrize("given", ["fast", "-1"])
def test_anything_else_is_refused_naming_the_rule(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("GRANTS_RATE_LIMIT", given)
    with pytest.raises(ValidationError, match="grants_rate_limit"):
        settings()


def test_a_secret_file_stands_in_for_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("from-the-file\n")
    s = settings(
        auth0_domain="tenant.auth0.com", auth0_client_id="c", auth0_client_secret_file=str(path)
    )
    s.require_auth0()
    assert load_secrets(s).client_secret == SecretStr("from-the-file")


def test_a_file_wins_over_the_variable_of_the_same_secret(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("file-token")
    s = settings(auth0_token="variable-token", auth0_token_file=str(path))
    assert load_secrets(s).token == SecretStr("file-token")


def test_an_unreadable_or_empty_secret_file_names_the_setting_not_the_value(
    tmp_path: Path,
) -> None:
    with pytest.raises(SecretFileError, match="AUTH0_CLIENT_SECRET_FILE"):
        read_secret_file(str(tmp_path / "missing"), "AUTH0_CLIENT_SECRET_FILE")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecretFileError, match="is empty"):
        read_secret_file(str(empty), "AUTH0_TOKEN_FILE")


def test_credentials_reload_a_rewritten_file_and_say_so(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old")
    credentials = Credentials(settings(auth0_client_id="c", auth0_client_secret_file=str(path)))
    assert not credentials.reload()
    path.write_text("new")
    assert credentials.reload()
    assert credentials.current.client_secret == SecretStr("new")
    assert "new" not in repr(credentials)


def test_a_file_watch_notices_a_rewrite_once(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("one")
    watch = FileWatch([str(path)])
    assert not watch.changed()
    path.write_text("two, longer")
    os.utime(path, ns=(1, 1))
    assert watch.changed()
    assert not watch.changed()
