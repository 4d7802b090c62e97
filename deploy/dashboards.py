"""Build the Grafana dashboards the xApp chart ships (helm/kdran-xapp/dashboards/*.json).

Two dashboards, both templated by data source, namespace and cell or dApp:

- ``overview``: per cell NMSE over E2 and the dApps' own online NMSE, fallback ratio, drift state
  and events, suppressed triggers, KPM report rate, jobs by phase and outcome, rollout outcomes,
  model version per dApp.
- ``dapp-latency``: p50/p99 and mean latency from the request histogram, throughput, shadow vs
  active online NMSE and their gap, fallbacks, tracked UEs, model load failures.

Every query uses only metric names from docs/METRICS.md (tests/deploy checks it). The JSON is
generated so ids, grid positions and data source references stay consistent; regenerate after an
edit and commit the output::

    .venv/bin/python deploy/dashboards.py            # write the files
    .venv/bin/python deploy/dashboards.py --check    # exit 1 when the files are stale
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "helm" / "kdran-xapp" / "dashboards"
GRID_WIDTH = 24
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
"""Matcher every query carries; ``$namespace`` is ``.*`` when All is selected."""
DAPP_NS = 'namespace=~"$dapp_namespace"'
"""The overview's matcher for dApp series: the dApps run next to the DUs, usually in another
namespace than the xApp (the charts install them in ``ran`` and ``ricxapp``)."""
RATE = "$__rate_interval"
RANGE = "$__range"
DB_UNIT = "suffix: dB"
"""Grafana's custom-suffix unit for decibels."""


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


@dataclass(frozen=True)
class Panel:
    """A panel: Grafana ``type``, title, queries, unit and width in grid columns (of 24)."""

    kind: str
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    width: int = 12
    height: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Variable:
    """A query variable over one label of one metric (multi-select with All = ``.*``)."""

    name: str
    label: str
    metric: str
    label_name: str
    scope: str = NS


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: uid, title, variables after ``datasource`` and ``namespace``, panels."""

    uid: str
    title: str
    description: str
    namespace_metric: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]


def dashed_for(pattern: str) -> dict[str, Any]:
    """A field override drawing every series whose name matches ``pattern`` dashed."""
    return {"matcher": {"id": "byRegexp", "options": pattern},
            "properties": [{"id": "custom.lineStyle",
                            "value": {"fill": "dash", "dash": [10, 10]}}]}


def variable_json(variable: Variable) -> dict[str, Any]:
    """Grafana templating entry of a query variable."""
    selector = f"{variable.metric}{{{variable.scope}}}" if variable.scope else variable.metric
    query = f"label_values({selector}, {variable.label_name})"
    return {
        "name": variable.name, "label": variable.label, "type": "query",
        "datasource": DATASOURCE, "definition": query,
        "query": {"query": query, "refId": f"{variable.name}-values"},
        "refresh": 2, "sort": 1, "multi": True, "includeAll": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [], "hide": 0, "regex": "", "skipUrlSync": False,
    }


def datasource_variable() -> dict[str, Any]:
    """The Prometheus data source picker every query refers to."""
    return {"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "refresh": 1, "hide": 0, "regex": "",
            "current": {}, "options": [], "skipUrlSync": False}


def target_json(target: Target, ref_id: str) -> dict[str, Any]:
    """Grafana target of a Prometheus query."""
    entry: dict[str, Any] = {"refId": ref_id, "datasource": DATASOURCE, "expr": target.expr,
                             "legendFormat": target.legend or "__auto",
                             "range": not target.instant, "instant": target.instant,
                             "editorMode": "code"}
    if target.table:
        entry["format"] = "table"
    return entry


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    """Grafana panel at grid position (``x``, ``y``)."""
    return {
        "id": panel_id, "type": panel.kind, "title": panel.title,
        "description": panel.description, "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [target_json(t, chr(ord("A") + i)) for i, t in enumerate(panel.targets)],
        "fieldConfig": {"defaults": {"unit": panel.unit, "custom": dict(panel.custom)},
                        "overrides": list(panel.overrides)},
        "options": dict(panel.options),
    }


def layout(panels: Sequence[Panel]) -> list[dict[str, Any]]:
    """Place panels left to right, wrapping rows at 24 columns; ids count from 1."""
    placed, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        placed.append(panel_json(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    """The complete Grafana dashboard model."""
    namespace = Variable("namespace", "Namespace", dashboard.namespace_metric, "namespace",
                         scope="")
    return {
        "uid": dashboard.uid, "title": dashboard.title, "description": dashboard.description,
        "tags": ["kdran", "o-ran"], "timezone": "browser", "editable": True,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "graphTooltip": 1,
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [datasource_variable(), variable_json(namespace),
                                *(variable_json(v) for v in dashboard.variables)]},
        "panels": layout(dashboard.panels),
    }


def overview() -> Dashboard:
    """Closed-loop overview: what the xApp sees per cell and what it did about it."""
    cell = f'{NS}, cell=~"$cell"'
    legend_bottom = {"legend": {"displayMode": "list", "placement": "bottom"}}
    bars = {"drawStyle": "bars", "fillOpacity": 60}
    stacked = {"stacking": {"mode": "normal"}, "fillOpacity": 40}
    return Dashboard(
        uid="kdran-overview", title="kdran / Overview",
        description="Channel-prediction health per cell, drift, re-distillation and rollout.",
        namespace_metric="kdran_xapp_kpm_reports_total",
        variables=(Variable("cell", "Cell", "kdran_xapp_cell_nmse_db", "cell"),
                   Variable("dapp", "dApp", "kdran_xapp_model_version_info", "dapp"),
                   Variable("dapp_namespace", "dApp namespace", "kdran_dapp_tracked_ues",
                            "namespace", scope="")),
        panels=(
            Panel("timeseries", "Prediction NMSE per cell (over E2)",
                  "VS.ChPred.NmseDb.Mean as the xApp decodes it from KPM reports; lower is "
                  "better.",
                  (Target(f"kdran_xapp_cell_nmse_db{{{cell}}}", "{{cell}}"),), unit=DB_UNIT),
            Panel("timeseries", "Online NMSE in the dApps",
                  "Each loaded model's rolling online NMSE, scored against later SRS "
                  "estimates (shadow dashed).",
                  (Target(f"max by (instance, role, model_version) "
                          f"(kdran_dapp_online_nmse_db{{{DAPP_NS}}})",
                          "{{instance}} {{role}} {{model_version}}"),),
                  unit=DB_UNIT, overrides=(dashed_for(".*shadow.*"),)),
            Panel("timeseries", "Fallback ratio per cell",
                  "Predictions answered by the AR/Wiener fallback over all predictions, per "
                  "KPM report.",
                  (Target(f"kdran_xapp_cell_fallback_ratio{{{cell}}}", "{{cell}}"),),
                  unit="percentunit"),
            Panel("state-timeline", "Drift state per cell",
                  "1 while the xApp considers a cell in drift.",
                  (Target(f"max by (cell) (kdran_xapp_drift_state{{{cell}}})", "{{cell}}"),),
                  options=legend_bottom),
            Panel("timeseries", "Drift events",
                  "Detections per cell and detector (Page-Hinkley, ADWIN, guards).",
                  (Target(f"sum by (cell, detector) "
                          f"(increase(kdran_xapp_drift_events_total{{{cell}}}[{RATE}]))",
                          "{{cell}} {{detector}}"),),
                  width=8, custom=bars),
            Panel("timeseries", "Suppressed triggers",
                  "Drift that did not launch a job, by reason (cooldown, budget, backoff, ...).",
                  (Target(f"sum by (reason) "
                          f"(increase(kdran_xapp_triggers_suppressed_total{{{NS}}}[{RATE}]))",
                          "{{reason}}"),),
                  width=8, custom=bars),
            Panel("timeseries", "KPM reports",
                  "E2 indications received, decoded and failed per second.",
                  (Target(f"sum by (outcome) "
                          f"(rate(kdran_xapp_kpm_reports_total{{{NS}}}[{RATE}]))",
                          "{{outcome}}"),),
                  unit="cps", width=8),
            Panel("timeseries", "Re-distillation jobs by phase",
                  "Jobs in each phase now.",
                  (Target(f"sum by (phase) (kdran_xapp_jobs{{{NS}}})", "{{phase}}"),),
                  width=8, custom=stacked),
            Panel("bargauge", "Finished jobs in range",
                  "Jobs that ended in the selected time range, by outcome.",
                  (Target(f"sum by (outcome) "
                          f"(increase(kdran_xapp_jobs_total{{{NS}}}[{RANGE}]))",
                          "{{outcome}}", instant=True),),
                  width=8, options={"orientation": "horizontal", "displayMode": "basic"}),
            Panel("bargauge", "Rollout outcomes in range",
                  "Promoted, discarded, rolled back and failed rollouts in the selected range.",
                  (Target(f"sum by (outcome) "
                          f"(increase(kdran_xapp_rollouts_total{{{NS}}}[{RANGE}]))",
                          "{{outcome}}", instant=True),),
                  width=8, options={"orientation": "horizontal", "displayMode": "basic"}),
            Panel("bargauge", "dApp re-syncs in range",
                  "Registry entries the xApp corrected to a dApp's own status, and dApp restarts "
                  "it detected, in the selected range.",
                  (Target(f'sum by (dapp) (increase(kdran_xapp_resync_corrections_total'
                          f'{{{NS}, dapp=~"$dapp"}}[{RANGE}]))', "{{dapp}} corrections",
                          instant=True),
                   Target(f'sum by (dapp) (increase(kdran_xapp_dapp_restarts_total'
                          f'{{{NS}, dapp=~"$dapp"}}[{RANGE}]))', "{{dapp}} restarts",
                          instant=True)),
                  width=8, options={"orientation": "horizontal", "displayMode": "basic"}),
            Panel("table", "Model version per dApp (xApp registry)",
                  "Which version each dApp runs in which role, as the xApp knows it.",
                  (Target(f'max by (dapp, role, version) '
                          f'(kdran_xapp_model_version_info{{{NS}, dapp=~"$dapp"}})',
                          instant=True, table=True),)),
            Panel("table", "Models loaded in the dApps",
                  "Which versions each dApp reports as loaded, per role.",
                  (Target(f"max by (instance, role, version) (kdran_dapp_model_info{{{DAPP_NS}}})",
                          instant=True, table=True),)),
        ))


def dapp_latency() -> Dashboard:
    """Data-plane view of the dApps: latency, throughput, model quality."""
    dapp = f'{NS}, instance=~"$dapp"'
    buckets = f"kdran_dapp_request_latency_seconds_bucket{{{dapp}}}"
    return Dashboard(
        uid="kdran-dapp-latency", title="kdran / dApp latency",
        description="Prediction latency, throughput and shadow vs active quality per dApp.",
        namespace_metric="kdran_dapp_tracked_ues",
        variables=(Variable("dapp", "dApp", "kdran_dapp_tracked_ues", "instance"),),
        panels=(
            Panel("timeseries", "Prediction latency p50 / p99",
                  "Server-side time per prediction RPC or stream message, from the histogram.",
                  (Target(f"histogram_quantile(0.5, sum by (le, rpc) "
                          f"(rate({buckets}[{RATE}])))", "{{rpc}} p50"),
                   Target(f"histogram_quantile(0.99, sum by (le, rpc) "
                          f"(rate({buckets}[{RATE}])))", "{{rpc}} p99")),
                  unit="s", overrides=(dashed_for(".* p99"),)),
            Panel("timeseries", "Mean latency",
                  "Mean server-side time per RPC.",
                  (Target(f"sum by (rpc) (rate(kdran_dapp_request_latency_seconds_sum{{{dapp}}}"
                          f"[{RATE}])) / sum by (rpc) "
                          f"(rate(kdran_dapp_request_latency_seconds_count{{{dapp}}}[{RATE}]))",
                          "{{rpc}}"),),
                  unit="s"),
            Panel("timeseries", "Throughput",
                  "Predictions per second by dApp and role.",
                  (Target(f"sum by (instance, role) "
                          f"(rate(kdran_dapp_predictions_total{{{dapp}}}[{RATE}]))",
                          "{{instance}} {{role}}"),),
                  unit="cps"),
            Panel("timeseries", "Requests by RPC",
                  "RPCs and stream messages handled per second.",
                  (Target(f"sum by (rpc) "
                          f"(rate(kdran_dapp_request_latency_seconds_count{{{dapp}}}[{RATE}]))",
                          "{{rpc}}"),),
                  unit="reqps"),
            Panel("timeseries", "Online NMSE: shadow vs active",
                  "Rolling online NMSE per loaded model; the shadow candidate is dashed.",
                  (Target(f"max by (instance, role, model_version) "
                          f"(kdran_dapp_online_nmse_db{{{dapp}}})",
                          "{{role}} {{model_version}} ({{instance}})"),),
                  unit=DB_UNIT, overrides=(dashed_for("shadow.*"),)),
            Panel("timeseries", "Shadow minus active NMSE",
                  "Below zero the shadow candidate predicts better than the active model.",
                  (Target(f'max by (instance) (kdran_dapp_online_nmse_db{{{dapp}, '
                          f'role="shadow"}}) - max by (instance) '
                          f'(kdran_dapp_online_nmse_db{{{dapp}, role="active"}})',
                          "{{instance}}"),),
                  unit=DB_UNIT),
            Panel("timeseries", "Fallbacks by reason",
                  "Answers served by the AR/Wiener fallback per second.",
                  (Target(f"sum by (reason) "
                          f"(rate(kdran_dapp_fallbacks_total{{{dapp}}}[{RATE}]))",
                          "{{reason}}"),),
                  unit="cps", width=8),
            Panel("stat", "Tracked UEs",
                  "UEs with history in memory.",
                  (Target(f"sum by (instance) (kdran_dapp_tracked_ues{{{dapp}}})",
                          "{{instance}}", instant=True),),
                  width=8),
            Panel("bargauge", "Model load failures in range",
                  "Refused or failed model loads in the selected range, by reason.",
                  (Target(f"sum by (reason) "
                          f"(increase(kdran_dapp_model_load_failures_total{{{dapp}}}[{RANGE}]))",
                          "{{reason}}", instant=True),),
                  width=8, options={"orientation": "horizontal", "displayMode": "basic"}),
            Panel("stat", "CPU wake-up latency limit",
                  "PM QoS CPU wake-up latency limit each dApp holds (µs; -1: none, idle CPUs may "
                  "halt and every round trip pays their wake-up).",
                  (Target(f"max by (instance) "
                          f"(kdran_dapp_cpu_wakeup_latency_limit_us{{{dapp}}})",
                          "{{instance}}", instant=True),),
                  unit="µs", width=8),
        ))


DASHBOARDS = {"overview": overview, "dapp-latency": dapp_latency}


def render_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{name}.json": json.dumps(dashboard_json(build()), indent=2) + "\n"
            for name, build in DASHBOARDS.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` report stale files and exit 1."""
    parser = argparse.ArgumentParser(
        description="Write the Grafana dashboards of the xApp chart.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR, help="output directory")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a file differs from what would be written")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_all().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale dashboards (run deploy/dashboards.py):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
