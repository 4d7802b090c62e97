"""The Grafana dashboards of the xApp chart, checked structurally.

Every PromQL expression is parsed by a real PromQL parser (promql-parser) after Grafana's
variables are substituted as Grafana would; each metric it selects must be in docs/METRICS.md
(histogram series by their _bucket/_sum/_count names), and each label it filters or groups by must
be a documented label of that metric or a scrape target label. Every documented metric appears on
some panel.

Still to come (needs a running dApp and xApp): a test that starts a real Prometheus scraping both
on localhost and evaluates every panel's query through the HTTP API. ``grafana_to_promql`` below is
the substitution it will reuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
from deploy_support import XAPP_CHART, DocumentedMetric, load_script

DASHBOARD_DIR = XAPP_CHART / "dashboards"
PANEL_TYPES = {"timeseries", "stat", "table", "bargauge", "state-timeline"}
TARGET_LABELS = {"namespace", "instance", "job", "pod", "service", "container", "endpoint"}
"""Labels Prometheus attaches per scrape target (ServiceMonitor discovery adds the last five)."""
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
GRAFANA_SUBSTITUTES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "30s"}
REQUIRED_VARIABLES = {"kdran-overview": {"datasource", "namespace", "cell", "dapp"},
                      "kdran-dapp-latency": {"datasource", "namespace", "dapp"}}


def grafana_to_promql(expr: str) -> str:
    """An expression as Grafana sends it with every variable on All: built-in intervals become
    durations, template variables the regex ``.*``."""
    for variable, value in GRAFANA_SUBSTITUTES.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text())
            for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def selectors(expr: str) -> Iterator[Any]:
    """Every vector selector of a PromQL expression (the walk enters range selectors too)."""
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    yield from found


def grouping_labels(expr: str) -> set[str]:
    """Labels named in ``by (...)`` / ``without (...)`` / ``on (...)`` clauses."""
    labels: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None:
                labels.update(matching.labels)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return labels


def documented_for(name: str, catalogue: dict[str, DocumentedMetric]) -> DocumentedMetric:
    """The METRICS.md entry a selected series name belongs to."""
    if name in catalogue:
        return catalogue[name]
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and catalogue.get(base) and catalogue[base].kind == "histogram":
            return catalogue[base]
    raise AssertionError(f"{name} is not in docs/METRICS.md")


def all_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} {target['refId']}", grafana_to_promql(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable["query"]
            yield f"variable {variable['name']}", grafana_to_promql(match.group(1))


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    found = load_dashboards()
    assert set(found) == {"overview.json", "dapp-latency.json"}
    return found


def test_committed_json_is_the_generator_output() -> None:
    generated = load_script("dashboards").render_all()
    committed = {path.name: path.read_text() for path in DASHBOARD_DIR.glob("*.json")}
    assert committed == generated, "run: .venv/bin/python deploy/dashboards.py"


def test_dashboard_structure(dashboards: dict[str, dict[str, Any]]) -> None:
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for dashboard in dashboards.values():
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        assert REQUIRED_VARIABLES[dashboard["uid"]] <= variables
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(set(ids)) == len(ids)
        occupied: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            assert panel["type"] in PANEL_TYPES and panel["title"] and panel["description"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
            cells = {(grid["x"] + dx, grid["y"] + dy)
                     for dx in range(grid["w"]) for dy in range(grid["h"])}
            assert not cells & occupied, f"{panel['title']} overlaps another panel"
            occupied |= cells
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert ref_ids and len(set(ref_ids)) == len(ref_ids)
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])


def test_variables_used_are_defined(dashboards: dict[str, dict[str, Any]]) -> None:
    for dashboard in dashboards.values():
        defined = {v["name"] for v in dashboard["templating"]["list"]}
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                used = set(re.findall(r"\$\{?(\w+)\}?", target["expr"])) - {
                    v.strip("$") for v in GRAFANA_SUBSTITUTES}
                assert used <= defined, (panel["title"], used - defined)


def test_queries_use_only_documented_metrics_and_labels(
        dashboards: dict[str, dict[str, Any]],
        metrics_catalogue: dict[str, DocumentedMetric]) -> None:
    for dashboard in dashboards.values():
        for where, expr in all_queries(dashboard):
            metrics_here = []
            for selector in selectors(expr):
                assert selector.name, f"{where}: selector without a metric name"
                metric = documented_for(selector.name, metrics_catalogue)
                metrics_here.append(metric)
                extra = {"le"} if selector.name.endswith("_bucket") else set()
                allowed = metric.labels | TARGET_LABELS | extra
                labels = {m.name for m in selector.matchers.matchers}
                assert labels <= allowed, f"{where}: {selector.name} has no {labels - allowed}"
            grouped_ok = set().union(*(m.labels for m in metrics_here)) | TARGET_LABELS | {"le"}
            assert grouping_labels(expr) <= grouped_ok, (where, grouping_labels(expr))


def test_every_documented_metric_is_on_a_panel(
        dashboards: dict[str, dict[str, Any]],
        metrics_catalogue: dict[str, DocumentedMetric]) -> None:
    shown = {documented_for(selector.name, metrics_catalogue).name
             for dashboard in dashboards.values()
             for panel in dashboard["panels"] for target in panel["targets"]
             for selector in selectors(grafana_to_promql(target["expr"]))}
    assert shown == set(metrics_catalogue)


def test_latency_panels_read_the_histogram(dashboards: dict[str, dict[str, Any]]) -> None:
    panels = {p["title"]: p for p in dashboards["dapp-latency.json"]["panels"]}
    quantiles = [t["expr"] for t in panels["Prediction latency p50 / p99"]["targets"]]
    assert [re.match(r"histogram_quantile\((0\.\d+),", q).group(1)  # type: ignore[union-attr]
            for q in quantiles] == ["0.5", "0.99"]
    assert all("kdran_dapp_request_latency_seconds_bucket" in q for q in quantiles)
