"""Both charts, every values case: Helm lint with zero findings above INFO, and every rendered
manifest valid against the Kubernetes schema (strict: unknown fields are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
from deploy_support import (
    CRD_KINDS,
    DAPP_CHART,
    DAPP_NAMESPACE,
    DAPP_RELEASE,
    KUBE_VERSION,
    XAPP_CHART,
    XAPP_NAMESPACE,
    XAPP_RELEASE,
    example_values,
    render,
)

LINT_WARNING = 2
CASES: dict[str, tuple[Path, str, str, str | None]] = {
    # case id: chart, release, namespace, values file in deploy/values (None: chart defaults)
    "xapp-default": (XAPP_CHART, XAPP_RELEASE, XAPP_NAMESPACE, None),
    "xapp-gpu-tls": (XAPP_CHART, XAPP_RELEASE, XAPP_NAMESPACE, "xapp-gpu-tls.yaml"),
    "dapp-default": (DAPP_CHART, DAPP_RELEASE, DAPP_NAMESPACE, None),
    "dapp-tls-uds": (DAPP_CHART, DAPP_RELEASE, DAPP_NAMESPACE, "dapp-tls-uds.yaml"),
}


def case_values(case: str) -> dict[str, Any]:
    """The user-supplied values of a case ({} for chart defaults)."""
    values_file = CASES[case][3]
    return example_values(values_file) if values_file else {}


@pytest.mark.parametrize("case", sorted(CASES))
def test_lint_has_no_warnings_or_errors(case: str) -> None:
    chart, _, namespace, _ = CASES[case]
    report = helm_python.lint(chart, case_values(case), strict=True, namespace=namespace,
                              kube_version=f"v{KUBE_VERSION}")
    assert report["total_charts_linted"] == 1
    findings = [m for m in report["messages"] if m["severity"] >= LINT_WARNING]
    assert report["errors"] == [] and findings == [], (report["errors"], findings)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_manifest_is_valid_kubernetes(case: str) -> None:
    chart, release, namespace, _ = CASES[case]
    manifests = render(chart, case_values(case), release, namespace)
    assert len(manifests) >= 3
    checked = 0
    for manifest in manifests:
        if (manifest["apiVersion"], manifest["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{manifest['kind']}/{manifest['metadata']['name']}: {error.message} "
                        f"at {list(error.path)}")
        checked += 1
        assert manifest["metadata"]["namespace"] == namespace, manifest["metadata"]["name"]
    assert checked >= 3


def test_nothing_is_cluster_scoped() -> None:
    """Both charts create only namespaced objects: no ClusterRole(Binding), no Namespace."""
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "Namespace", "PersistentVolume",
                      "CustomResourceDefinition", "StorageClass"}
    for case in CASES:
        chart, release, namespace, _ = CASES[case]
        kinds = {m["kind"] for m in render(chart, case_values(case), release, namespace)}
        assert not kinds & cluster_scoped, (case, kinds & cluster_scoped)
