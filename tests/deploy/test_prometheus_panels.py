"""Every Grafana panel query, evaluated by a real Prometheus scraping a running dApp and xApp.

The stack, all on 127.0.0.1:

- ``kdran dapp serve`` (tiny preset, no model at first) fed by ``Traffic`` (synthetic SRS over an
  ``Observe`` stream): its first answers are ``no_model`` fallbacks; then an ``outdated`` model is
  deployed as active.
- ``kdran xapp run --mode local`` pointed at that dApp. Its drift guard is set below the model's
  real NMSE, so the embedded E2 node's KPM reports drive a real drift detection, a job (the
  ``prometheus_harness`` job double publishing a real linear ONNX model), a shadow deployment on
  the dApp and a rollout outcome, and later drift suppressed by the cooldown. The outcome is
  usually "promoted"; it is "failed" when the xApp's first ``GetStatus`` after the deployment
  comes before the shadow's first prediction (the dApp lists a model only once it has
  predicted), which the panels do not care about: any outcome is a series.
- After the rollout the test deploys a shadow model itself, so shadow-vs-active panels have data.
- ``/usr/bin/prometheus`` scrapes both every second. The target labels stand in for what
  Kubernetes service discovery adds: ``namespace`` "ran" for the dApp and "ricxapp" for the xApp
  (the charts' namespaces), ``instance`` the scraped address.

Grafana substitution (``GrafanaSelection``): the overview is viewed with namespace "ricxapp",
dApp namespace "ran", the one cell and dApp "du-1"; the latency dashboard with namespace "ran"
and the dApp's instance. Values are regex-escaped as Grafana's Prometheus data source does
(``127\\\\.0\\\\.0\\\\.1:port`` inside the PromQL string); ``$__range`` is the time since
Prometheus started, ``$__interval`` = max(scrape interval, range / 1000 points) and
``$__rate_interval`` = max(``$__interval`` + scrape interval, 4 x scrape interval) = 4 s.

Every target runs through ``/api/v1/query`` (at the end of the window) and, for range targets,
also ``/api/v1/query_range`` over the window as a time-series panel draws it; each must succeed
and return data. Each variable's ``label_values(selector, label)`` runs through
``/api/v1/label/<label>/values`` with ``match[]`` and must offer the selected value.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DAPP_NAMESPACE, XAPP_CHART, XAPP_NAMESPACE
from prometheus_harness import (
    INSTALL_HINT,
    PROMETHEUS_BINARY,
    GrafanaSelection,
    Processes,
    PrometheusServer,
    ScrapeTarget,
    Traffic,
    free_port,
    publish_model,
    wait_until,
)

HARNESS = Path(__file__).with_name("prometheus_harness.py")
CELL = "00101-000000001"
E2_NODE = "gnb-1"
DAPP_NAME = "du-1"
SCRAPE_S = 1.0
SETTLE_S = 5.0
"""Scrapes after the last event, so every rate window (4 s) holds at least two samples."""
EXPECTED_EMPTY: dict[tuple[str, str], str] = {}
"""(dashboard uid, panel title) -> why the panel legitimately has no data. None here: every
panel's series exist once the stack has run its drift -> job -> rollout cycle."""


@dataclass(frozen=True)
class Stack:
    """A running stack and where to find it."""

    prometheus: PrometheusServer
    dapp_instance: str
    started_at: float


def _controls(workdir: Path, dapp_address: str, http_port: int) -> Path:
    """The xApp's config-file.json: one E2 node and cell, the dApp, a local job, fast rollout,
    and a baseline guard far below any real NMSE so drift is detected on the live stream."""
    document = {"name": "kdran-xapp", "controls": {
        "log_level": "WARNING",
        "e2": {"nodes": [{"meid": E2_NODE, "cells": [CELL]}], "discover_from_rnib": False,
               "kpm": {"reporting_period_ms": 200, "granularity_period_ms": 200}},
        "drift": {"guards": {"baseline_nmse_db": -60.0, "persistence_reports": 3}},
        "policy": {"cooldown_s": 3600.0},
        "jobs": {"launcher": "local", "preset": "tiny", "command": [sys.executable, str(HARNESS)],
                 "active_deadline_seconds": 60},
        "artifact_store": {"path": str(workdir / "store")},
        "rollout": {"min_scored_predictions": 100, "poll_interval_s": 0.2,
                    "rollback_watch_s": 0.0, "shadow_timeout_s": 30.0},
        "dapps": {"endpoints": [{"name": DAPP_NAME, "address": dapp_address,
                                 "e2_node": E2_NODE}]},
        "http": {"host": "127.0.0.1", "port": http_port}}}
    path = workdir / "config-file.json"
    path.write_text(json.dumps(document))
    return path


def _kdran(*args: str) -> list[str]:
    return [sys.executable, "-m", "kdran.cli", *args]


def _has(prometheus: PrometheusServer, expr: str) -> bool:
    return prometheus.series_count(expr) > 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prometheus scraping a dApp and an xApp that went through drift, a job and a rollout."""
    if not PROMETHEUS_BINARY.is_file():
        pytest.fail(f"{PROMETHEUS_BINARY} is missing: {INSTALL_HINT}")
    workdir = tmp_path_factory.mktemp("prometheus-panels")
    processes = Processes(workdir)
    traffic: Traffic | None = None
    grpc_port, dapp_metrics, xapp_http = free_port(), free_port(), free_port()
    dapp_address, dapp_instance = f"127.0.0.1:{grpc_port}", f"127.0.0.1:{dapp_metrics}"
    try:
        started_at = time.time()
        prometheus = PrometheusServer(processes, workdir, [
            ScrapeTarget("kdran-dapp", dapp_instance, {"namespace": DAPP_NAMESPACE}),
            ScrapeTarget("kdran-xapp", f"127.0.0.1:{xapp_http}", {"namespace": XAPP_NAMESPACE})],
            SCRAPE_S)
        processes.start("dapp", _kdran(
            "dapp", "serve", "--preset", "tiny", "--listen", dapp_address,
            "--metrics-port", str(dapp_metrics), "--state-dir", str(workdir / "dapp-state"),
            "--workers", "8", "--log-level", "WARNING"))
        from dapp.client import DappClient

        with DappClient(dapp_address) as client:
            client.wait_ready(30)
            traffic = Traffic(dapp_address, CELL).start()
            wait_until(lambda: traffic.sent if traffic else 0, lambda n: n >= 40, 20,
                       "fallback answers before any model")
            client.deploy_model(publish_model(workdir / "v0", "outdated", "tiny", "v0"), "v0",
                                mode="active")
            processes.start("xapp", _kdran("xapp", "run", "--mode", "local", "--config",
                                           str(_controls(workdir, dapp_address, xapp_http))))
            for expr in ("kdran_xapp_rollouts_total", "kdran_xapp_triggers_suppressed_total"):
                _wait_for_series(prometheus, processes, traffic, expr, 45)
            client.deploy_model(publish_model(workdir / "s1", "outdated", "tiny", "s1"), "s1",
                                mode="shadow")
            _wait_for_series(prometheus, processes, traffic,
                             'kdran_dapp_online_nmse_db{role="shadow"}', 20)
        time.sleep(SETTLE_S)
        processes.check_alive()
        assert traffic.error is None, f"traffic failed: {traffic.error!r}"
        yield Stack(prometheus, dapp_instance, started_at)
    finally:
        if traffic is not None:
            traffic.stop()
        processes.stop_all()


def _wait_for_series(prometheus: PrometheusServer, processes: Processes, traffic: Traffic,
                     expr: str, timeout_s: float) -> None:
    """Wait until Prometheus has scraped a series of ``expr``; fail fast if a child died."""
    def probe() -> bool:
        processes.check_alive()
        if traffic.error is not None:
            raise RuntimeError(f"traffic failed: {traffic.error!r}")
        return _has(prometheus, expr)
    try:
        wait_until(probe, bool, timeout_s, f"series {expr}", interval_s=0.5)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\nxApp log:\n{processes.log_tail('xapp')}") from None


def _selection(uid: str, stack: Stack) -> GrafanaSelection:
    """The concrete selection each dashboard is viewed with (module docstring)."""
    range_s = time.time() - stack.started_at
    values: dict[str, dict[str, list[str]]] = {
        "kdran-overview": {"namespace": [XAPP_NAMESPACE], "dapp_namespace": [DAPP_NAMESPACE],
                           "cell": [CELL], "dapp": [DAPP_NAME]},
        "kdran-dapp-latency": {"namespace": [DAPP_NAMESPACE], "dapp": [stack.dapp_instance]}}
    return GrafanaSelection(values[uid], range_s, SCRAPE_S)


def _dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((XAPP_CHART / "dashboards").glob("*.json"))]


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def test_variable_queries_offer_the_selection(stack: Stack) -> None:
    """Each query variable's values (as Grafana asks Prometheus for them) include the value the
    panels are evaluated with."""
    checked = 0
    for dashboard in _dashboards():
        selection = _selection(dashboard["uid"], stack)
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, f"{dashboard['uid']}: ${variable['name']} is not label_values(...)"
            selector = selection.interpolate(match["selector"])
            body = stack.prometheus.api(f"label/{match['label']}/values",
                                        **{"match[]": selector, "start": f"{stack.started_at:.3f}",
                                           "end": f"{time.time():.3f}"})
            assert body["status"] == "success", (variable["name"], selector, body)
            wanted = set(selection.values[variable["name"]])
            assert wanted <= set(body["data"]), (dashboard["uid"], variable["name"], selector,
                                                 body["data"])
            checked += 1
    assert checked == 6


def test_every_panel_query_returns_data(stack: Stack) -> None:
    """Every target of every panel: instant query (and range query for range targets) succeeds;
    every panel not in ``EXPECTED_EMPTY`` returns series."""
    end = time.time()
    failures, empty, evaluated = [], set(), 0
    for dashboard in _dashboards():
        uid = dashboard["uid"]
        selection = _selection(uid, stack)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = selection.interpolate(target["expr"])
                bodies = [stack.prometheus.query(expr, end)]
                if target["range"]:
                    bodies.append(stack.prometheus.query_range(expr, stack.started_at, end,
                                                               selection.interval_s))
                for body in bodies:
                    evaluated += 1
                    if body.get("status") != "success":
                        failures.append(f"{uid} / {panel['title']}: {expr}: {body}")
                    elif not body["data"]["result"]:
                        empty.add((uid, panel["title"], expr))
    assert not failures, "queries failed:\n" + "\n".join(failures)
    unexpected = sorted(e for e in empty if (e[0], e[1]) not in EXPECTED_EMPTY)
    assert not unexpected, "panels without data:\n" + "\n".join(map(str, unexpected))
    assert {(u, t) for u, t, _ in empty} == set(EXPECTED_EMPTY)
    panels = sum(len(d["panels"]) for d in _dashboards())
    assert panels == 23 and evaluated >= panels
