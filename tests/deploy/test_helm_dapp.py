"""The dApp chart: placement next to the DU, gRPC and metrics ports, gRPC health probes (native,
or the image's TLS-capable probe script), the Unix socket volume and Secret mounts."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest
from deploy_support import (
    DAPP_CHART,
    DAPP_NAMESPACE,
    DAPP_RELEASE,
    REPO,
    by_kind,
    example_values,
    one,
    render,
)
from dockerfile_parse import DockerfileParser

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def render_dapp(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The dApp chart rendered as release kdran-dapp in namespace ran."""
    return render(DAPP_CHART, values or {}, DAPP_RELEASE, DAPP_NAMESPACE)


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render_dapp()


@pytest.fixture(scope="module")
def tls_uds() -> list[dict[str, Any]]:
    return render_dapp(example_values("dapp-tls-uds.yaml"))


def pod_spec(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests, kind)["spec"]["template"]["spec"]
    return spec


def dapp_container(spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in spec["containers"] if c["name"] == "dapp"]
    return dict(container)


def flag(args: list[str], name: str) -> str:
    """The value following ``name`` in an argument list."""
    assert args.count(name) == 1, (name, args)
    return args[args.index(name) + 1]


def probe_script_in_image() -> str:
    """Where the Dockerfile's dapp target puts grpc_health_check.py."""
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    for instruction in parser.structure:
        if instruction["instruction"] == "COPY" and "grpc_health_check.py" in instruction["value"]:
            return str(instruction["value"].split()[-1])
    raise AssertionError("the Dockerfile does not copy deploy/grpc_health_check.py")


def test_default_is_a_deployment_pinned_to_the_du_node(default: list[dict[str, Any]]) -> None:
    deployment = one(default, "Deployment")
    assert by_kind(default, "DaemonSet") == []
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (term,) = pod_spec(default, "Deployment")["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert term == {"labelSelector": {"matchLabels": {"app.kubernetes.io/component": "du"}},
                    "topologyKey": "kubernetes.io/hostname"}


def test_ports_service_and_native_grpc_probes(default: list[dict[str, Any]]) -> None:
    spec = pod_spec(default, "Deployment")
    container = dapp_container(spec)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": 50051, "metrics": 9100}
    for probe in PROBES:
        assert container[probe]["grpc"] == {"port": 50051}, probe
    service = one(default, "Service")
    assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        ("grpc", 50051, "grpc"), ("metrics", 9100, "metrics")]
    assert service["spec"]["selector"].items() <= one(default, "Deployment")["spec"]["template"][
        "metadata"]["labels"].items()
    args = container["args"]
    assert flag(args, "--listen") == "0.0.0.0:50051"
    assert flag(args, "--metrics-port") == "9100"
    assert flag(args, "--preset") == "std"
    assert "--model" not in args and "--uds" not in args


def test_no_kubernetes_api_access(default: list[dict[str, Any]]) -> None:
    assert by_kind(default, "Role") == [] and by_kind(default, "RoleBinding") == []
    assert one(default, "ServiceAccount")["automountServiceAccountToken"] is False
    spec = pod_spec(default, "Deployment")
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert dapp_container(spec)["securityContext"]["readOnlyRootFilesystem"] is True


def test_daemonset_with_socket_tls_and_signing(tls_uds: list[dict[str, Any]]) -> None:
    assert by_kind(tls_uds, "Deployment") == []
    spec = pod_spec(tls_uds, "DaemonSet")
    assert spec["nodeSelector"] == {"kdran.io/du": "true"}
    assert "affinity" not in spec
    container = dapp_container(spec)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    args = container["args"]

    socket = flag(args, "--uds")
    assert socket.rsplit("/", 1)[0] == mounts["uds"]
    assert volumes["uds"]["hostPath"] == {"path": "/var/run/kdran", "type": "Directory"}
    assert volumes["state"]["hostPath"]["path"] == "/var/lib/kdran/dapp-state"

    assert volumes["grpc-tls"]["secret"]["secretName"] == "kdran-dapp-grpc-tls"
    for name in ("--tls-cert", "--tls-key", "--tls-client-ca"):
        assert flag(args, name).startswith(mounts["grpc-tls"] + "/")
    assert volumes["model-signing"]["secret"]["items"] == [
        {"key": "signing.pub", "path": "signing.pub"}]
    assert flag(args, "--verify-key") == f"{mounts['model-signing']}/signing.pub"


def test_tls_probes_run_the_image_probe_script(tls_uds: list[dict[str, Any]]) -> None:
    container = dapp_container(pod_spec(tls_uds, "DaemonSet"))
    tls_dir = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["grpc-tls"]
    script = probe_script_in_image()
    for probe in PROBES:
        assert "grpc" not in container[probe], probe
        command = container[probe]["exec"]["command"]
        assert command[:2] == ["python", script]
        assert flag(command, "--address") == "127.0.0.1:50051"
        assert flag(command, "--server-name") == "kdran-dapp.ran.svc"
        for name in ("--tls-ca", "--tls-cert", "--tls-key"):
            assert flag(command, name).startswith(tls_dir + "/")


def test_service_monitor_scrapes_the_metrics_port(tls_uds: list[dict[str, Any]],
                                                  default: list[dict[str, Any]]) -> None:
    assert by_kind(default, "ServiceMonitor") == []
    monitor = one(tls_uds, "ServiceMonitor")
    service = one(tls_uds, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items())
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"


def test_cpu_wakeup_latency_limit_is_opt_in(default: list[dict[str, Any]]) -> None:
    spec = pod_spec(default, "Deployment")
    assert "--cpu-wakeup-latency-us" not in dapp_container(spec)["args"]
    assert all("hostPath" not in v or v["hostPath"]["path"] != "/dev/cpu_dma_latency"
               for v in spec["volumes"])

    spec = pod_spec(render_dapp({"cpuWakeupLatencyUs": 0}), "Deployment")
    container = dapp_container(spec)
    assert flag(container["args"], "--cpu-wakeup-latency-us") == "0"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/cpu_dma_latency"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["hostPath"] == {"path": "/dev/cpu_dma_latency", "type": "CharDevice"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False   # still unprivileged


def test_bad_choices_fail_the_render() -> None:
    with pytest.raises(helm_python.HelmError, match="kind must be Deployment or DaemonSet"):
        render_dapp({"kind": "StatefulSet"})
    with pytest.raises(helm_python.HelmError, match=r"grpcTls\.existingSecret is required"):
        render_dapp({"grpcTls": {"enabled": True}})
