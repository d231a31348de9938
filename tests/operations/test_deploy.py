"""deploy/k8s: valid Kubernetes objects (offline schemas), wired to the service's settings."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from cds_service.gunicorn_conf import cpu_count
from cds_service.settings import Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def load(name: str) -> dict:
    return yaml.safe_load((K8S / name).read_text())


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path):
    """kubernetes-validate ships the schemas: no cluster, no network."""
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest():
    assert sorted(load("kustomization.yaml")["resources"]) == [p.name for p in MANIFESTS]


def container() -> dict:
    (only,) = load("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return only


def test_probes_limits_and_secrets():
    app = container()
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(app["resources"]["limits"])
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in app["env"] if "valueFrom" in e}
    assert set(secrets) == {"DATABASE_URL", "REDIS_URL", "RLS_CDS_PATIENT_KEY_SECRET"}
    assert app["command"][:3] == ["rls-cds", "serve", "--prod"]


def test_config_map_holds_settings_the_service_reads():
    data = load("configmap.yaml")["data"]
    settings = {k: v for k, v in data.items() if k.startswith("RLS_CDS_")}
    known = {f"RLS_CDS_{name.upper()}" for name in Settings.model_fields}
    assert set(settings) - known <= {"RLS_CDS_THREADS", "RLS_CDS_WORKERS"}
    environ = {k: v for k, v in settings.items() if k in known and k != "RLS_CDS_TRUSTED_CLIENTS"}
    Settings(**{k.removeprefix("RLS_CDS_").lower(): v for k, v in environ.items()})


def test_hpa_scales_the_deployment_and_grace_outlasts_gunicorn():
    from cds_service import gunicorn_conf

    hpa = load("hpa.yaml")["spec"]
    assert hpa["scaleTargetRef"]["name"] == load("deployment.yaml")["metadata"]["name"]
    assert hpa["minReplicas"] >= 2
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > gunicorn_conf.graceful_timeout


def test_gunicorn_timeout_sits_above_the_hook_deadline():
    from cds_service import gunicorn_conf

    assert gunicorn_conf.timeout > 2 * Settings().hook_deadline_s
    assert gunicorn_conf.worker_class == "gthread" and gunicorn_conf.accesslog is None


@pytest.mark.parametrize(("quota", "expected"), [("max 100000", None), ("150000 100000", 2),
                                                 ("50000 100000", 1)])  # fmt: skip
def test_workers_follow_the_cgroup_cpu_quota(tmp_path, quota, expected):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(quota)
    available = cpu_count(tmp_path / "absent")
    assert cpu_count(cpu_max) == (available if expected is None else min(expected, available))


def test_trusted_clients_are_a_mounted_file_never_in_the_environment():
    app = container()
    env_maps = {ref["configMapRef"]["name"] for ref in app["envFrom"]}
    settings_map = load("configmap.yaml")
    assert settings_map["metadata"]["name"] in env_maps
    assert all(key.startswith("RLS_CDS_") for key in settings_map["data"]), "only settings"
    clients = load("trusted-clients.yaml")
    assert clients["metadata"]["name"] not in env_maps
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == clients[
        "metadata"]["name"]]  # fmt: skip
    (mount,) = [m for m in app["volumeMounts"] if m["name"] == volume["name"]]
    (item,) = volume["configMap"]["items"]
    path = f"{mount['mountPath']}/{item['path']}"
    assert mount["readOnly"] is True
    assert settings_map["data"]["RLS_CDS_TRUSTED_CLIENTS"] == path
    json.loads(clients["data"][item["key"]])  # a JSON list of clients


def test_disruption_budget_keeps_a_pod_of_the_deployment():
    pdb = load("pdb.yaml")["spec"]
    deployment = load("deployment.yaml")["spec"]
    assert pdb["selector"] == deployment["selector"]
    assert 1 <= pdb["minAvailable"] < deployment["replicas"]


def test_metrics_port_is_reachable_from_the_monitoring_namespace_only():
    settings_map = load("configmap.yaml")["data"]
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert int(settings_map["RLS_CDS_METRICS_PORT"]) == ports["metrics"]
    template = load("deployment.yaml")["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    policy = load("networkpolicy.yaml")["spec"]
    assert policy["podSelector"] == load("deployment.yaml")["spec"]["selector"]
    by_port = {rule["ports"][0]["port"]: rule for rule in policy["ingress"]}
    assert set(by_port) == {"http", "metrics"}
    assert "from" not in by_port["http"]  # EHRs reach the hooks
    (source,) = by_port["metrics"]["from"]
    assert source == {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}  # fmt: skip
    service_ports = {p["targetPort"] for p in load("service.yaml")["spec"]["ports"]}
    assert service_ports == {"http"}, "the Service publishes the hooks' port only"
