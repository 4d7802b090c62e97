"""The xApp's Prometheus metrics (names and labels exactly as in ``docs/METRICS.md``).

Each ``XappMetrics`` owns its ``CollectorRegistry``, so several xApp instances (tests) never share
counters; ``/metrics`` serves ``exposition()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from xapp.resync import ResyncReport

JOB_PHASES = ("pending", "exporting_csi", "adapting", "distilling", "pruning", "exporting",
              "quantizing", "gates", "published", "rollout")
"""Values of the ``phase`` label of ``kdran_xapp_jobs`` (the job's own phase lines, plus the
xApp's steps before the job starts and after it publishes)."""


class PhaseGauge(Collector):
    """``kdran_xapp_jobs{phase}``: jobs per phase now.

    A custom collector because the registry would otherwise refuse it next to the counter
    ``kdran_xapp_jobs_total`` (both claim the base name ``kdran_xapp_jobs``); in the exposition
    they are distinct families (``kdran_xapp_jobs`` gauge, ``kdran_xapp_jobs_total`` counter).
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(JOB_PHASES, 0)

    def move(self, old: str | None, new: str | None) -> None:
        """One job left phase ``old`` (None = new job) for ``new`` (None = finished)."""
        if old is not None:
            self.counts[old] = max(0, self.counts.get(old, 0) - 1)
        if new is not None:
            self.counts[new] = self.counts.get(new, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("kdran_xapp_jobs", "Jobs per phase now", labels=["phase"])
        for phase, count in self.counts.items():
            family.add_metric([phase], count)
        yield family


class XappMetrics:
    """All xApp metrics in one registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.kpm_reports = Counter("kdran_xapp_kpm_reports", "E2 indications by outcome",
                                   ["outcome"], registry=r)
        self.cell_nmse_db = Gauge("kdran_xapp_cell_nmse_db",
                                  "VS.ChPred.NmseDb.Mean as seen over E2 (dB)", ["cell"],
                                  registry=r)
        self.cell_fallback_ratio = Gauge("kdran_xapp_cell_fallback_ratio",
                                         "Fallbacks / predictions per report", ["cell"], registry=r)
        self.drift_state = Gauge("kdran_xapp_drift_state", "1 while a cell is in drift", ["cell"],
                                 registry=r)
        self.drift_events = Counter("kdran_xapp_drift_events", "Drift detections",
                                    ["cell", "detector"], registry=r)
        self.triggers_suppressed = Counter("kdran_xapp_triggers_suppressed",
                                           "Drift that did not launch a job", ["reason"],
                                           registry=r)
        self.jobs = PhaseGauge()
        r.register(self.jobs)
        self.jobs_finished = Counter("kdran_xapp_jobs", "Finished jobs by outcome", ["outcome"],
                                     registry=r)
        self.rollouts = Counter("kdran_xapp_rollouts", "Rollout results", ["outcome"],
                                registry=r)
        self.model_version = Gauge("kdran_xapp_model_version_info",
                                   "Model per dApp as the xApp knows it",
                                   ["dapp", "version", "role"], registry=r)
        self.resync_corrections = Counter("kdran_xapp_resync_corrections",
                                          "Registry entries re-sync corrected to a dApp's truth",
                                          ["dapp"], registry=r)
        self.dapp_restarts = Counter("kdran_xapp_dapp_restarts",
                                     "dApp restarts seen by re-sync (start time moved)", ["dapp"],
                                     registry=r)
        for outcome in ("received", "decoded", "failed"):
            self.kpm_reports.labels(outcome=outcome)

    def set_model_versions(self, dapp: str, roles: dict[str, str]) -> None:
        """Replace dApp ``dapp``'s ``{role: version}`` series (roles with "" are dropped)."""
        for labels in list(self._series(self.model_version)):
            if labels.get("dapp") == dapp:
                self.model_version.remove(labels["dapp"], labels["version"], labels["role"])
        for role, version in roles.items():
            if version:
                self.model_version.labels(dapp=dapp, version=version, role=role).set(1)

    def track_dapp(self, dapp: str) -> None:
        """Create ``dapp``'s per-dApp counters at 0 (so rates over them exist from the start)."""
        self.resync_corrections.labels(dapp=dapp)
        self.dapp_restarts.labels(dapp=dapp)

    def record_resync(self, report: ResyncReport) -> None:
        """Count one re-sync's corrections and a detected restart of its dApp."""
        self.track_dapp(report.dapp)
        self.resync_corrections.labels(dapp=report.dapp).inc(len(report.corrections))
        if report.restarted:
            self.dapp_restarts.labels(dapp=report.dapp).inc()

    def forget_cells(self, labels: list[str]) -> None:
        """Drop the per-cell gauge series of streams no longer tracked (evicted)."""
        for gauge in (self.cell_nmse_db, self.cell_fallback_ratio, self.drift_state):
            for label in labels:
                with contextlib.suppress(KeyError):  # never set for this stream
                    gauge.remove(label)

    @staticmethod
    def _series(gauge: Gauge) -> list[dict[str, str]]:
        return [sample.labels for metric in gauge.collect() for sample in metric.samples]

    def exposition(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
