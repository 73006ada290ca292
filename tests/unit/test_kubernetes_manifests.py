"""deploy/kubernetes/, checked offline: every core resource against Kubernetes' own schemas
(kubernetes-validate ships them), and what the worker needs from its pod, its disruption
budget and KEDA's ScaledObject."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from grant_worker.config.settings import Settings, unknown_grants_variables

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
CRDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def resources() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in [*sorted(FOLDER.glob("*.yaml")), FOLDER / "secret.yaml.example"]:
        for doc in documents(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def test_every_core_resource_is_valid_for_kubernetes(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    checked = 0
    for doc in resources.values():
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 5  # configmap, deployment, budget, two secrets


def test_a_broken_manifest_is_caught() -> None:
    # The check above can fail: a misspelt field is refused.
    doc = documents(FOLDER / "deployment.yaml")[0]
    doc["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def pod_of(resources: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return dict(resources[("Deployment", "grant-worker")]["spec"]["template"]["spec"])


def config_of(resources: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    return dict(resources[("ConfigMap", "grant-worker")]["data"])


def test_liveness_on_healthz_and_readiness_on_readyz(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    (container,) = pod_of(resources)["containers"]
    port = int(config_of(resources)["GRANTS_METRICS_PORT"])
    (declared,) = container["ports"]
    assert declared == {"name": "metrics", "containerPort": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_the_auth0_secret_is_a_mounted_file(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    pod = pod_of(resources)
    (container,) = pod["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert "AUTH0_CLIENT_SECRET" not in env and "AUTH0_CLIENT_SECRET" not in config_of(resources)
    path = Path(env["AUTH0_CLIENT_SECRET_FILE"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = resources[("Secret", volume["secret"]["secretName"])]
    assert path.name in secret["stringData"]
    redis_ref = env["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert redis_ref["key"] in resources[("Secret", redis_ref["name"])]["stringData"]


def test_the_config_is_a_valid_worker_configuration(
    resources: dict[tuple[str, str], dict[str, Any]], tmp_path: Path
) -> None:
    config = config_of(resources)
    assert list(unknown_grants_variables(config)) == []
    secret = tmp_path / "client_secret"
    secret.write_text("s3cret")
    values = {k.lower(): v for k, v in config.items()} | {
        "auth0_client_secret_file": str(secret),
        "redis_url": "redis://:pw@redis:6379/0",
    }
    Settings(_env_file=None, **values).require_auth0()  # type: ignore[call-arg]


def test_the_pod_may_finish_its_shutdown_grace_before_it_is_killed(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    grace = float(config_of(resources).get("GRANTS_SHUTDOWN_GRACE_S", 20))
    assert pod_of(resources)["terminationGracePeriodSeconds"] >= grace + 10


def test_resources_and_a_non_root_security_context(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    pod = pod_of(resources)
    (container,) = pod["containers"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_the_disruption_budget_covers_the_workers(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    budget = resources[("PodDisruptionBudget", "grant-worker")]["spec"]
    labels = resources[("Deployment", "grant-worker")]["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    # At one replica a minAvailable of 1 would block every node drain.
    assert budget.get("maxUnavailable") == 1 and "minAvailable" not in budget


def test_keda_scales_the_deployment_on_the_queues_redis_list(
    resources: dict[tuple[str, str], dict[str, Any]],
) -> None:
    scaled = resources[("ScaledObject", "grant-worker")]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "grant-worker"
    assert "replicas" not in resources[("Deployment", "grant-worker")]["spec"]
    assert scaled["minReplicaCount"] >= 1  # the intake bridge and recovery need a worker
    assert scaled["maxReplicaCount"] >= scaled["minReplicaCount"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == config_of(resources)["GRANTS_QUEUE"]
    assert int(trigger["metadata"]["listLength"]) > 0
    auth = resources[("TriggerAuthentication", trigger["authenticationRef"]["name"])]["spec"]
    (ref,) = auth["secretTargetRef"]
    assert ref["parameter"] == "password"
    assert ref["key"] in resources[("Secret", ref["name"])]["stringData"]
