"""docker-compose.yml, the Dockerfile and constraints.txt, checked by
reading them (no Docker daemon needed): what they publish, how Redis keeps data, how workers
scale and stop, what the image installs."""

from __future__ import annotations

import re
import tomllib
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


def test_workers_scale_without_collisions_and_check_liveness_not_readiness(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    for fixed in ("container_name", "hostname", "ports"):
        assert fixed not in worker  # each replica: its own name, its own network namespace
    env = worker["environment"]
    check = " ".join(worker["healthcheck"]["test"])
    # A tenant outage makes every worker unready: restarting them for it would cure nothing.
    assert f"127.0.0.1:{env['GRANTS_METRICS_PORT']}/healthz" in check
    assert "readyz" not in check


def test_the_worker_takes_its_tenant_from_the_environment_and_its_secret_from_a_file(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    env = worker["environment"]
    assert "AUTH0_CLIENT_SECRET" not in env
    for name in ("AUTH0_DOMAIN", "AUTH0_CLIENT_ID"):
        with pytest.raises(KeyError, match=name):  # no default tenant, no default client
            interpolate(str(env[name]), {"REDIS_PASSWORD": "pw"})
    (secret,) = worker["secrets"]
    assert env["AUTH0_CLIENT_SECRET_FILE"] == f"/run/secrets/{secret}"
    assert "file" in compose["secrets"][secret]
    assert [entry["path"] for entry in worker["env_file"]] == ["worker.env"]
    assert all(entry["required"] is False for entry in worker["env_file"])
    text = (ROOT / "docker-compose.yml").read_text()
    assert "emulator-secret" not in text.replace("printf emulator-secret", "")


def test_the_emulator_is_a_dev_profile_the_worker_does_not_wait_for(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["emulator"]["profiles"] == ["dev"]
    assert set(services["worker"]["depends_on"]) == {"redis"}
    for name in ("redis", "worker"):
        assert "profiles" not in services[name], name


def test_every_built_image_has_a_name_and_its_own_stage(compose: dict[str, Any]) -> None:
    stages = re.findall(r"^FROM \S+ AS (\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    for name in ("worker", "emulator"):
        service = compose["services"][name]
        assert interpolate(service["image"], {}).startswith("grant-worker"), name
        assert service["build"]["target"] == name and name in stages
    # A plain `docker build .` gives the worker: it is the last stage.
    assert stages[-1] == "worker"


def test_the_worker_may_finish_its_shutdown_grace_before_it_is_killed(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    grace = float(worker["environment"].get("GRANTS_SHUTDOWN_GRACE_S", 20))
    assert seconds(worker["stop_grace_period"]) >= grace + 5


def test_the_worker_environment_is_a_valid_configuration(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    given = {
        "REDIS_PASSWORD": "pw",
        "AUTH0_DOMAIN": "https://tenant.eu.auth0.com",
        "AUTH0_CLIENT_ID": "worker-app",
    }
    env = {
        key: interpolate(str(value), given)
        for key, value in compose["services"]["worker"]["environment"].items()
    }
    secret = tmp_path / "auth0_client_secret"
    secret.write_text("s3cret")
    values = {k.lower(): v for k, v in env.items()} | {"auth0_client_secret_file": str(secret)}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    settings.require_auth0()
    assert settings.redis_url.get_secret_value() == "redis://:pw@redis:6379/0"
    assert list(unknown_grants_variables(env)) == []


def stage(dockerfile: str, name: str) -> str:
    return dockerfile.split(f" AS {name}\n", 1)[1].split("\nFROM ", 1)[0]


def test_the_images_install_pinned_versions_and_the_worker_no_extra() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n]*", dockerfile)
    assert installs and all("-c constraints.txt" in line for line in installs)
    # The worker's image: the base install, neither the dashboard's nor the emulator's stack.
    (worker_install,) = re.findall(r"pip install [^\n&]*", stage(dockerfile, "worker"))
    assert worker_install.split()[-1] == "."
    assert '".[emulator]"' in stage(dockerfile, "emulator")
    assert "constraints.txt" in (ROOT / ".dockerignore").read_text()
    pins = {
        line.split("==")[0]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for requirement in [*project["dependencies"], *extras["dashboard"], *extras["emulator"]]:
        name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
        assert name.lower() in pins, requirement


def test_a_plain_install_carries_neither_the_dashboard_nor_the_emulator() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in project["dependencies"]}
    for heavy in ("aiohttp", "starlette", "uvicorn", "jinja2", "pyyaml", "pytest"):
        assert heavy not in base, heavy
    assert "grant-worker[dashboard,emulator]" in project["optional-dependencies"]["test"]
