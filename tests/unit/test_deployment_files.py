"""docker-compose.yml, the Dockerfile and constraints.txt, checked by
reading them (no Docker daemon needed): what they publish, how Redis keeps data, how workers
scale and stop, what the image installs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from grant_worker.config.settings import Settings, unknown_grants_variables

ROOT = Path(__file__).resolve().parents[2]
# Settings other issues add on their branches; named here so that this test stays exact.


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message}, and $$ for a literal $."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value).replace("$$", "$")


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def test_nothing_is_published_beyond_loopback_and_no_host_networking(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", name
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert "ports" not in compose["services"]["worker"]


def test_redis_has_a_password_a_memory_ceiling_noeviction_and_an_append_only_file(
    compose: dict[str, Any],
) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert re.search(r"--maxmemory \S+", command)
    assert "--maxmemory-policy noeviction" in command
    assert '--requirepass "$$REDIS_PASSWORD"' in command
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):  # no default password
        interpolate(redis["environment"]["REDIS_PASSWORD"], {})


def test_workers_scale_without_collisions_and_report_readiness(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in worker  # each replica: its own name, its own network namespace
    env = worker["environment"]
    check = " ".join(worker["healthcheck"]["test"])
    assert f"127.0.0.1:{env['GRANTS_METRICS_PORT']}/readyz" in check


def test_the_worker_may_finish_its_shutdown_grace_before_it_is_killed(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    grace = float(worker["environment"].get("GRANTS_SHUTDOWN_GRACE_S", 20))
    assert seconds(worker["stop_grace_period"]) >= grace + 5


def test_the_worker_environment_is_a_valid_configuration(compose: dict[str, Any]) -> None:
    env = {
        key: interpolate(str(value), {"REDIS_PASSWORD": "pw"})
        for key, value in compose["services"]["worker"]["environment"].items()
    }
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # type: ignore[call-arg]
    settings.require_auth0()
    assert settings.redis_url.get_secret_value() == "redis://:pw@redis:6379/0"
    assert list(unknown_grants_variables(env)) == []


def test_the_image_installs_pinned_versions_of_every_dependency() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install [^\n]*-c constraints\.txt", dockerfile)
    assert "constraints.txt" in (ROOT / ".dockerignore").read_text()
    pins = {
        line.split("==")[0]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    pyproject = (ROOT / "pyproject.toml").read_text()
    runtime = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    for requirement in re.findall(r'"([A-Za-z0-9_.-]+)', runtime):
        assert requirement.lower() in pins, requirement
