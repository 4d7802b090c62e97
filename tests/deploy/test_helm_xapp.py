"""The xApp chart renders what the O-RAN SC onboarder's xapp-std chart renders for our descriptor
(names, labels, ports, config maps, probes), plus least-privilege RBAC, the artifact store, Secret
mounts, dashboards and the optional ServiceMonitor."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    REPO,
    XAPP_CHART,
    XAPP_NAMESPACE,
    XAPP_RELEASE,
    by_kind,
    example_values,
    onboarder_validator,
    one,
    render,
)

NAME = "kdran-xapp"
FULLNAME = f"{XAPP_NAMESPACE}-{NAME}"
APP_LABELS = {"app": FULLNAME, "release": XAPP_RELEASE}
JOB_LAUNCHER_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"],
     "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
]


def render_xapp(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The xApp chart rendered as release kdran-xapp in namespace ricxapp."""
    return render(XAPP_CHART, values or {}, XAPP_RELEASE, XAPP_NAMESPACE)


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render_xapp()


@pytest.fixture(scope="module")
def gpu_tls() -> list[dict[str, Any]]:
    return render_xapp(example_values("xapp-gpu-tls.yaml"))


def container_of(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The xApp's only container."""
    containers = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def rendered_descriptor(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """config-file.json as the appconfig ConfigMap carries it."""
    config_map = one(manifests, "ConfigMap", f"configmap-{FULLNAME}-appconfig")
    descriptor: dict[str, Any] = json.loads(config_map["data"]["config-file.json"])
    return descriptor


def test_deployment_names_labels_and_hostname(default: list[dict[str, Any]]) -> None:
    deployment = one(default, "Deployment", FULLNAME)
    assert APP_LABELS.items() <= deployment["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == APP_LABELS
    pod = deployment["spec"]["template"]
    assert APP_LABELS.items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"]["kubernetes_name"] == f"{XAPP_NAMESPACE}_{NAME}"
    assert pod["spec"]["hostname"] == NAME


def test_named_ports_and_probes(default: list[dict[str, Any]]) -> None:
    container = container_of(default)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "rmrdata": 4560, "rmrroute": 4561, "http": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/ric/v1/health/alive", "port": 8080}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ric/v1/health/ready", "port": 8080}
    assert container["args"] == ["--mode", "ric", "--config", "$(CONFIG_FILE)"]


def test_services_rmr_first_and_http(default: list[dict[str, Any]]) -> None:
    rmr = one(default, "Service", f"service-{FULLNAME}-rmr")
    http = one(default, "Service", f"service-{FULLNAME}-http")
    assert [(p["name"], p["port"]) for p in rmr["spec"]["ports"]] == [
        ("rmrdata", 4560), ("rmrroute", 4561)]
    assert [(p["name"], p["port"]) for p in http["spec"]["ports"]] == [("http", 8080)]
    for service in (rmr, http):
        assert service["spec"]["selector"] == APP_LABELS
        assert all(p["targetPort"] == p["name"] for p in service["spec"]["ports"])


def test_config_maps_and_environment(default: list[dict[str, Any]]) -> None:
    appconfig = one(default, "ConfigMap", f"configmap-{FULLNAME}-appconfig")
    assert set(appconfig["data"]) == {"config-file.json", "schema.json"}
    assert json.loads(appconfig["data"]["schema.json"]) == json.loads(
        (REPO / "schema.json").read_text())
    appenv = one(default, "ConfigMap", f"configmap-{FULLNAME}-appenv")["data"]
    assert appenv == {
        "RMR_RTG_SVC": "4561",
        "RMR_SRC_ID": f"service-{FULLNAME}-rmr.{XAPP_NAMESPACE}",
        "DBAAS_SERVICE_HOST": "service-ricplt-dbaas-tcp.ricplt.svc.cluster.local",
        "DBAAS_SERVICE_PORT": "6379",
        "CONFIG_FILE": "/opt/ric/config/config-file.json",
    }
    container = container_of(default)
    env_sources = [s["configMapRef"]["name"] for s in container["envFrom"]]
    assert env_sources == [f"configmap-{FULLNAME}-appenv", "dbaas-appconfig"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config-volume"] == "/opt/ric/config"
    volumes = {v["name"]: v for v in one(default, "Deployment")["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes["config-volume"]["configMap"]["name"] == f"configmap-{FULLNAME}-appconfig"


def test_default_descriptor_is_the_shipped_one_plus_the_claim(
        default: list[dict[str, Any]], conformance_dir: Path) -> None:
    descriptor = rendered_descriptor(default)
    shipped = json.loads((REPO / "config-file.json").read_text())
    expected = copy.deepcopy(shipped)
    expected["controls"]["artifact_store"]["pvc_claim_name"] = f"{FULLNAME}-artifacts"
    assert descriptor == expected
    onboarder_validator(conformance_dir).validate(descriptor)


def test_gpu_tls_descriptor_carries_the_chart_settings(
        gpu_tls: list[dict[str, Any]], conformance_dir: Path) -> None:
    descriptor = rendered_descriptor(gpu_tls)
    onboarder_validator(conformance_dir).validate(descriptor)
    controls = descriptor["controls"]
    assert controls["jobs"]["gpu_count"] == 1
    assert controls["jobs"]["launcher"] == "k8s"
    assert controls["dapps"]["tls"] == {
        "enabled": True, "ca_file": "/etc/kdran/tls/ca.crt", "cert_file": "/etc/kdran/tls/tls.crt",
        "key_file": "/etc/kdran/tls/tls.key", "server_name_override": "kdran-dapp.ran.svc"}
    assert controls["model_signing"] == {
        "public_key_file": "/etc/kdran/signing/signing.pub",
        "job_secret_name": "kdran-model-signing", "job_secret_key": "signing.key"}
    assert [d["name"] for d in controls["dapps"]["endpoints"]] == ["du-1", "du-2"]
    # Merged, not replaced: keys the values file does not name keep the descriptor's values.
    assert controls["e2"]["kpm"]["reporting_period_ms"] == 1000


def test_secrets_are_mounted_where_the_descriptor_points(gpu_tls: list[dict[str, Any]]) -> None:
    controls = rendered_descriptor(gpu_tls)["controls"]
    container = container_of(gpu_tls)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in one(gpu_tls, "Deployment")["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes["grpc-tls"]["secret"]["secretName"] == "kdran-xapp-grpc-tls"
    for key in ("ca_file", "cert_file", "key_file"):
        assert controls["dapps"]["tls"][key].startswith(mounts["grpc-tls"]["mountPath"] + "/")
    signing = volumes["model-signing"]["secret"]
    assert signing["secretName"] == "kdran-model-signing"
    # Least privilege: the xApp gets the public key only; the private key is for the Jobs.
    assert signing["items"] == [{"key": "signing.pub", "path": "signing.pub"}]
    assert controls["model_signing"]["public_key_file"] == (
        f"{mounts['model-signing']['mountPath']}/signing.pub")
    assert all(m.get("readOnly") for m in (mounts["grpc-tls"], mounts["model-signing"]))


def test_role_allows_exactly_the_job_launcher(default: list[dict[str, Any]]) -> None:
    role = one(default, "Role")
    assert role["metadata"]["namespace"] == XAPP_NAMESPACE
    assert role["rules"] == JOB_LAUNCHER_RULES
    binding = one(default, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    account = one(default, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": XAPP_NAMESPACE}]
    pod = one(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_artifact_store_claim_created_or_reused(default: list[dict[str, Any]]) -> None:
    claim = one(default, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == f"{FULLNAME}-artifacts"
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    store = rendered_descriptor(default)["controls"]["artifact_store"]
    mounts = {m["name"]: m["mountPath"] for m in container_of(default)["volumeMounts"]}
    assert mounts["artifacts"] == store["path"]

    reused = render_xapp({"artifactStore": {"existingClaim": "models-nfs"}})
    assert by_kind(reused, "PersistentVolumeClaim") == []
    volumes = {v["name"]: v for v in one(reused, "Deployment")["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"]["claimName"] == "models-nfs"
    assert rendered_descriptor(reused)["controls"]["artifact_store"]["pvc_claim_name"] == (
        "models-nfs")


def test_controls_override_replaces_false_and_zero_values() -> None:
    """Values win over the descriptor even when they are false/0/"" (a plain Sprig merge
    would drop such overrides)."""
    manifests = render_xapp({"controls": {"e2": {"discover_from_rnib": False},
                                          "policy": {"cooldown_s": 0},
                                          "jobs": {"launcher": "local"}}})
    controls = rendered_descriptor(manifests)["controls"]
    assert controls["e2"]["discover_from_rnib"] is False
    assert controls["policy"]["cooldown_s"] == 0
    assert controls["jobs"]["launcher"] == "local"
    assert controls["e2"]["kpm"]["measurements"]  # siblings untouched


def test_image_override_reaches_container_and_descriptor() -> None:
    manifests = render_xapp({"image": {"registry": "registry.ric.example:5000", "tag": "0.1.1"}})
    assert container_of(manifests)["image"] == "registry.ric.example:5000/kdran-xapp:0.1.1"
    image = rendered_descriptor(manifests)["containers"][0]["image"]
    assert image == {"registry": "registry.ric.example:5000", "name": "kdran-xapp",
                     "tag": "0.1.1"}


def test_pod_runs_non_root_with_read_only_root(default: list[dict[str, Any]]) -> None:
    pod = one(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = container_of(default)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert {"/tmp", "/var/lib/kdran"} <= writable


def test_dashboards_are_sidecar_config_maps(default: list[dict[str, Any]]) -> None:
    shipped = sorted(p.name for p in (XAPP_CHART / "dashboards").glob("*.json"))
    maps = [m for m in by_kind(default, "ConfigMap")
            if m["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert sorted(key for m in maps for key in m["data"]) == shipped
    for config_map in maps:
        ((file_name, text),) = config_map["data"].items()
        assert json.loads(text) == json.loads((XAPP_CHART / "dashboards" / file_name).read_text())
    disabled = render_xapp({"dashboards": {"enabled": False}})
    assert [m for m in by_kind(disabled, "ConfigMap")
            if "grafana_dashboard" in m["metadata"]["labels"]] == []


def test_service_monitor_scrapes_the_http_service(gpu_tls: list[dict[str, Any]],
                                                  default: list[dict[str, Any]]) -> None:
    assert by_kind(default, "ServiceMonitor") == []
    monitor = one(gpu_tls, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [s for s in by_kind(gpu_tls, "Service")
                if selector.items() <= s["metadata"]["labels"].items()]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    scraped = [s for s in selected if endpoint["port"] in {p["name"] for p in s["spec"]["ports"]}]
    assert [s["metadata"]["name"] for s in scraped] == [f"service-{FULLNAME}-http"]
