"""Settings follow docs/design.md's names and refuse unsafe or inconsistent configurations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from grant_worker.config.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_bare_domain_means_https_and_the_management_audience() -> None:
    s = settings(auth0_domain="tenant.eu.auth0.com")
    assert s.auth0_base_url == "https://tenant.eu.auth0.com"
    assert s.management_audience == "https://tenant.eu.auth0.com/api/v2/"


def test_plain_http_is_accepted_to_a_loopback_address() -> None:
    s = settings(auth0_domain="http://127.0.0.1:8787")
    assert s.auth0_base_url == "http://127.0.0.1:8787"
    assert s.management_audience == "https://127.0.0.1:8787/api/v2/"


@pytest.mark.parametrize("domain", ["http://tenant.auth0.com", "http://10.0.0.5:80", "ftp://x"])
def test_plain_http_to_anything_but_loopback_is_refused(domain: str) -> None:
    with pytest.raises(ValidationError, match="auth0_domain"):
        settings(auth0_domain=domain)


def test_settings_come_from_the_environment_names_of_the_design(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRANTS_QUEUE", "onboarding")
    monkeypatch.setenv("GRANTS_RATE_LIMIT", "2.5")
    monkeypatch.setenv("AUTH0_CLIENT_SECRET", "s3cret")
    s = settings()
    assert s.grants_queue == "onboarding"
    assert s.grants_rate_limit == 2.5
    assert "s3cret" not in repr(s)


def test_a_visibility_timeout_shorter_than_a_task_can_run_is_refused() -> None:
    with pytest.raises(ValidationError, match="GRANTS_VISIBILITY_TIMEOUT"):
        settings(grants_retry_budget_s=60, grants_visibility_timeout=30)


def test_the_derived_visibility_timeout_outlasts_the_hard_time_limit() -> None:
    s = settings(grants_retry_budget_s=5)
    assert s.visibility_timeout_s > s.task_hard_time_limit_s > s.task_soft_time_limit_s > 5


def test_missing_credentials_are_named() -> None:
    with pytest.raises(ValueError, match="AUTH0_CLIENT_ID"):
        settings(auth0_domain="t.auth0.com").require_auth0()


@pytest.mark.parametrize(
    "domain", ["tenant.eu.auth0.com/api/v2/", "https://tenant.eu.auth0.com/api/v2/"]
)
def test_a_domain_with_a_path_is_refused_in_both_forms(domain: str) -> None:
    with pytest.raises(ValidationError, match="path"):
        settings(auth0_domain=domain)


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("not-a-url", "must be a URL with a scheme"),
        ("http://localhost:6379/0", "scheme 'http' is not one of"),
        ("redis://localhost:99999/0", "port is not a number"),
        ("redis://:secret@localhost:6379/zero", "database number"),
        ("redis://", "names no host"),
    ],
)
def test_a_malformed_redis_url_is_refused_without_repeating_it(url: str, rule: str) -> None:
    from grant_worker.config.settings import redis_url_problem

    problem = redis_url_problem(url)
    assert problem is not None and rule in problem
    assert "secret" not in problem
    with pytest.raises(ValidationError):
        settings(redis_url=url)


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "rediss://u:p@h:6380/2", "redis://h", "unix:///run/r.sock"]
)
def test_well_formed_redis_urls_are_accepted(url: str) -> None:
    assert settings(redis_url=url).redis_url.get_secret_value() == url


def test_unknown_grants_variables_are_named_with_the_likeliest_intended_one() -> None:
    from grant_worker.config.settings import unknown_grants_variables

    warnings = unknown_grants_variables(
        {"GRANTS_CONCURENCY": "3", "GRANTS_QUEUE": "q", "GRANTS_WHATEVER": "1", "HOME": "/"}
    )
    assert warnings == [
        "unknown setting GRANTS_CONCURENCY is ignored; did you mean GRANTS_CONCURRENCY?",
        "unknown setting GRANTS_WHATEVER is ignored",
    ]


def test_plain_http_to_a_named_emulator_host_needs_the_explicit_opt_in() -> None:
    with pytest.raises(ValidationError, match="GRANTS_INSECURE_HTTP_HOSTS"):
        settings(auth0_domain="http://emulator:8787")
    s = settings(auth0_domain="http://emulator:8787", grants_insecure_http_hosts="emulator")
    assert s.auth0_base_url == "http://emulator:8787"
