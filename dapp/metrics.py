"""Prometheus metrics of the dApp, named exactly as in docs/METRICS.md.

Counters and the latency histogram are updated on the request path; the gauges that describe
state (online NMSE per model, loaded versions, tracked UEs) are computed at scrape time from a
``StateSnapshot`` callback, so they can never go stale. Each ``DappMetrics`` owns its registry
(several servers can live in one process, e.g. in tests).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds: 10 µs .. 1 s, dense around the sub-millisecond target.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    10e-6, 20e-6, 50e-6, 100e-6, 150e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 2e-3, 5e-3,
    10e-3, 20e-3, 50e-3, 0.1, 0.25, 1.0)
RECENT_LATENCIES = 10_000
FALLBACK_REASONS = ("no_model", "model_error", "deadline")
LOAD_FAILURE_REASONS = ("too_large", "size", "digest", "unfit", "invalid_model",
                        "version_mismatch", "missing", "signature")


Family = TypeVar("Family", Counter, Histogram)


def _labelled(cache: dict[tuple[str, ...], Family], family: Family, *labels: str) -> Family:
    """``family.labels(*labels)``, cached in ``cache``. Thread-safe without a lock: threads
    racing on a new label set all get the one child that ``labels`` keeps for it."""
    child = cache.get(labels)
    if child is None:
        child = cache[labels] = family.labels(*labels)
    return child


@dataclass(frozen=True)
class LatencyStats:
    """Recent server-side latency of one RPC kind, in µs."""

    rpc: str
    count: int
    p50_us: float
    p99_us: float


@dataclass(frozen=True)
class StateSnapshot:
    """What the scrape-time gauges show: ``{(version, role): nmse_db}``, ``{role: version}``
    and the number of tracked UEs."""

    online_nmse_db: dict[tuple[str, str], float]
    versions: dict[str, str]
    tracked_ues: int


class _StateCollector(Collector):
    """Gauges computed from a ``StateSnapshot`` at every scrape."""

    def __init__(self, source: Callable[[], StateSnapshot]) -> None:
        self.source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self.source()
        nmse = GaugeMetricFamily("kdran_dapp_online_nmse_db",
                                 "Rolling online NMSE of each model, scored against later SRS (dB)",
                                 labels=["model_version", "role"])
        for (version, role), value in sorted(state.online_nmse_db.items()):
            if math.isfinite(value):
                nmse.add_metric([version, role], value)
        info = GaugeMetricFamily("kdran_dapp_model_info", "Loaded model versions (=1)",
                                 labels=["role", "version"])
        for role, version in sorted(state.versions.items()):
            info.add_metric([role, version], 1.0)
        ues = GaugeMetricFamily("kdran_dapp_tracked_ues", "UEs with history in memory")
        ues.add_metric([], float(state.tracked_ues))
        yield from (nmse, info, ues)


@dataclass
class DappMetrics:
    """The dApp's metric families in their own registry, plus recent latencies for GetStatus."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.latency = Histogram(
            "kdran_dapp_request_latency_seconds",
            "Server-side time per prediction RPC / stream message", ["rpc"],
            buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.predictions = Counter("kdran_dapp_predictions_total", "Predictions made",
                                   ["model_version", "role"], registry=self.registry)
        self.fallbacks = Counter("kdran_dapp_fallbacks_total",
                                 "Answers served by the AR/Wiener fallback", ["reason"],
                                 registry=self.registry)
        self.load_failures = Counter("kdran_dapp_model_load_failures_total",
                                     "Refused or failed model loads", ["reason"],
                                     registry=self.registry)
        # Labelled children of the request-path metrics, looked up once per label set: a
        # ``labels()`` call takes the family's lock and builds its key on every request.
        self._latency_children: dict[tuple[str, ...], Histogram] = {}
        self._prediction_children: dict[tuple[str, ...], Counter] = {}
        self._fallback_children: dict[tuple[str, ...], Counter] = {}
        for reason in FALLBACK_REASONS:           # export zeros before the first event
            _labelled(self._fallback_children, self.fallbacks, reason)
        for reason in LOAD_FAILURE_REASONS:
            self.load_failures.labels(reason)
        self.cpu_latency_limit = Gauge(
            "kdran_dapp_cpu_wakeup_latency_limit_us",
            "PM QoS CPU wake-up latency limit the dApp holds (µs; -1 = none)",
            registry=self.registry)
        self.cpu_latency_limit.set(-1)
        self._recent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def observe_latency(self, rpc: str, seconds: float) -> None:
        """Record one server-side latency of ``rpc`` (histogram and recent window)."""
        _labelled(self._latency_children, self.latency, rpc).observe(seconds)
        with self._lock:
            recent = self._recent.get(rpc)
            if recent is None:
                recent = self._recent[rpc] = deque(maxlen=RECENT_LATENCIES)
            recent.append(seconds * 1e6)

    def count_predictions(self, version: str, role: str, n: int) -> None:
        """Add ``n`` predictions of model ``version`` in ``role`` ("active" / "shadow")."""
        _labelled(self._prediction_children, self.predictions, version, role).inc(n)

    def count_fallbacks(self, reason: str, n: int) -> None:
        """Add ``n`` fallback answers for ``reason`` (one of ``FALLBACK_REASONS``)."""
        _labelled(self._fallback_children, self.fallbacks, reason).inc(n)

    def latency_stats(self) -> list[LatencyStats]:
        """p50/p99 in µs of the last ``RECENT_LATENCIES`` calls per RPC."""
        with self._lock:
            recents = {rpc: np.array(recent) for rpc, recent in self._recent.items()}
        stats = []
        for rpc, values in sorted(recents.items()):
            if values.size:
                p50, p99 = np.percentile(values, [50, 99])
                stats.append(LatencyStats(rpc, int(self.latency_count(rpc)), float(p50),
                                          float(p99)))
        return stats

    def latency_count(self, rpc: str) -> float:
        """Lifetime number of latency observations of ``rpc``."""
        for metric in self.latency.collect():
            for sample in metric.samples:
                if sample.name.endswith("_count") and sample.labels.get("rpc") == rpc:
                    return sample.value
        return 0.0

    def watch_state(self, source: Callable[[], StateSnapshot]) -> None:
        """Export the scrape-time gauges computed by ``source``."""
        self.registry.register(_StateCollector(source))

    def serve_http(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
