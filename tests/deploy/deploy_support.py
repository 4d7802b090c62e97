"""Helpers of the deployment tests: repository paths, the metric catalogue, Helm renders.

Charts are rendered by Helm's own Go engine (``helm-python-sdk``), never by re-implementing
templates; manifests are validated against the Kubernetes OpenAPI schemas of ``KUBE_VERSION`` with
``kubernetes-validate`` in strict mode.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python
import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
"""CI runs a clean clone with ``shared/`` beside it: the repository's parent directory."""
CHARTS = REPO / "helm"
XAPP_CHART = CHARTS / "kdran-xapp"
DAPP_CHART = CHARTS / "kdran-dapp"
EXAMPLE_VALUES = REPO / "deploy" / "values"
KUBE_VERSION = "1.33.0"
XAPP_NAMESPACE = "ricxapp"
XAPP_RELEASE = "kdran-xapp"
DAPP_NAMESPACE = "ran"
DAPP_RELEASE = "kdran-dapp"
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
"""Custom resources: no core schema exists; tests check them against the objects they select."""

_METRIC_ROW = re.compile(r"^\|\s*`(?P<name>[a-z_:][a-z0-9_:]*)`\s*\|\s*(?P<type>[a-z]+)[^|]*\|"
                         r"(?P<labels>[^|]*)\|")
_LABEL = re.compile(r"`([a-z_][a-z0-9_]*)`")


@dataclass(frozen=True)
class DocumentedMetric:
    """A row of docs/METRICS.md: type (counter/gauge/histogram) and label names."""

    name: str
    kind: str
    labels: frozenset[str]


def documented_metrics() -> dict[str, DocumentedMetric]:
    """Every metric of docs/METRICS.md by name (labels parsed from the labels column)."""
    metrics = {}
    for line in (REPO / "docs" / "METRICS.md").read_text().splitlines():
        match = _METRIC_ROW.match(line)
        if match:
            metrics[match["name"]] = DocumentedMetric(match["name"], match["type"],
                                                      _label_names(match["labels"]))
    if not metrics:
        raise AssertionError("docs/METRICS.md lists no metrics (table format changed?)")
    return metrics


def _label_names(cell: str) -> frozenset[str]:
    """Label names of a METRICS.md labels cell: `a`, `b` (`x`/`y`) -> {a, b}; the parenthesised
    value lists are not label names."""
    without_values = re.sub(r"\([^)]*\)", "", cell)
    return frozenset(_LABEL.findall(without_values))


def onboarder_validator(conformance_dir: Path) -> jsonschema.Draft7Validator:
    """The O-RAN SC onboarder's descriptor schema with schema.json substituted for
    ``properties.controls``, exactly as dms_cli onboard validates config-file.json."""
    root = json.loads((conformance_dir / "xapp-descriptor-schema.json").read_text())
    root["properties"]["controls"] = json.loads((REPO / "schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(root)
    return jsonschema.Draft7Validator(root,
                                      format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def load_script(name: str) -> ModuleType:
    """Import ``deploy/<name>.py`` (a standalone script, not a package) as a module."""
    path = REPO / "deploy" / f"{name}.py"
    module_name = f"kdran_deploy_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def example_values(file_name: str) -> dict[str, Any]:
    """A values file of deploy/values, parsed by Helm's own YAML loader."""
    values: dict[str, Any] = helm_python.values_from_yaml(
        (EXAMPLE_VALUES / file_name).read_text())
    return values


def render(chart_dir: Path, values: dict[str, Any], release: str,
           namespace: str) -> list[dict[str, Any]]:
    """Render a chart with Helm's engine; returns every manifest (NOTES.txt excluded)."""
    with helm_python.Chart.load(chart_dir) as chart:
        rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    manifests = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Manifests of one kind."""
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single manifest of ``kind`` (and ``name``); fails when there is not exactly one."""
    found = [m for m in by_kind(manifests, kind) if name is None or m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]
