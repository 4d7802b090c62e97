"""Streaming drift detection on the channel-prediction KPMs, one detector set per stream.

A *stream* is one cell (Format 1 reports) or one UE group of a cell (Format 3 reports). Each
report gives a ``KpmSample``; ``StreamDetector.update`` feeds its NMSE (``VS.ChPred.NmseDb.Mean``,
dB, higher = worse) to river's Page-Hinkley (mode "up") and ADWIN, and checks three absolute guards:

- ``baseline_guard``: NMSE above the classical baseline's level plus a margin;
- ``fallback_guard``: ``VS.ChPred.Fallback / VS.ChPred.Count`` above a threshold;
- ``bler_guard``: BLER = ``TB.ErrTotalNbrDl / TB.TotNbrDl`` risen over its reference level while the
  NMSE rose over its own (a prediction problem that hurts the link, not just noise).

Guards must hold for ``persistence_reports`` consecutive reports. A stream enters the drift state at
the first detection; each detector fires at most once per episode, and the episode ends after
``clear_after_reports`` reports in which no detector fired and no guard held (or on ``reset``, e.g.
after a new model was promoted).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from river.drift import ADWIN, PageHinkley

from xapp.config import DriftConfig

PAGE_HINKLEY = "page_hinkley"
ADWIN_DETECTOR = "adwin"
BASELINE_GUARD = "baseline_guard"
FALLBACK_GUARD = "fallback_guard"
BLER_GUARD = "bler_guard"
DETECTORS = (PAGE_HINKLEY, ADWIN_DETECTOR, BASELINE_GUARD, FALLBACK_GUARD, BLER_GUARD)


@dataclass(frozen=True, order=True)
class StreamKey:
    """A drift stream: the E2 node, the cell (NR CGI text) and the UE group ("" = whole cell)."""

    e2_node: str
    cell: str
    ue_group: str = ""

    @property
    def label(self) -> str:
        """The metric label: ``cell`` or ``cell/ue_group``."""
        return f"{self.cell}/{self.ue_group}" if self.ue_group else self.cell


@dataclass(frozen=True)
class KpmSample:
    """One report's channel-prediction KPMs for one stream (None = not reported / noValue)."""

    key: StreamKey
    nmse_db: float | None
    nmse_p90_db: float | None = None
    predictions: int | None = None
    fallbacks: int | None = None
    tb_total: int | None = None
    tb_errors: int | None = None

    @property
    def fallback_ratio(self) -> float | None:
        """Fallbacks / predictions in the period, None when no prediction was made."""
        if not self.predictions or self.fallbacks is None:
            return None
        return self.fallbacks / self.predictions

    @property
    def bler(self) -> float | None:
        """Erroneous / total DL transport blocks in the period, None when none were sent."""
        if not self.tb_total or self.tb_errors is None:
            return None
        return self.tb_errors / self.tb_total


@dataclass(frozen=True)
class DriftEvent:
    """A detection: which detector fired on which stream, at which report of that stream.

    ``value`` is the quantity the detector judged (NMSE dB, fallback ratio or BLER) and
    ``reference`` the level it was compared with (NaN where the detector has none).
    """

    key: StreamKey
    detector: str
    report_index: int
    value: float
    reference: float


@dataclass
class _Reference:
    """Rolling reference level of one quantity, frozen while the stream is in drift."""

    size: int
    values: deque[float] = field(default_factory=deque)

    def push(self, value: float) -> None:
        self.values.append(value)
        while len(self.values) > self.size:
            self.values.popleft()

    @property
    def ready(self) -> bool:
        return len(self.values) >= self.size

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan


class StreamDetector:
    """Detectors and guards of one stream; ``update`` returns the detections of one report."""

    def __init__(self, key: StreamKey, config: DriftConfig) -> None:
        self.key = key
        self.config = config
        self.reports = 0
        self.in_drift = False
        self._fired: set[str] = set()
        self._quiet = 0
        self._persist: dict[str, int] = {BASELINE_GUARD: 0, FALLBACK_GUARD: 0, BLER_GUARD: 0}
        window = config.guards.reference_window_reports
        self._nmse_ref = _Reference(window)
        self._bler_ref = _Reference(window)
        self._recent = _Reference(config.adwin.min_window_length)
        self._new_detectors()

    def _new_detectors(self) -> None:
        ph, ad = self.config.page_hinkley, self.config.adwin
        self._ph = PageHinkley(min_instances=ph.min_instances, delta=ph.delta,
                               threshold=ph.threshold, alpha=ph.alpha, mode="up")
        self._adwin = ADWIN(delta=ad.delta, clock=ad.clock,
                            min_window_length=ad.min_window_length, grace_period=ad.grace_period)

    def reset(self) -> None:
        """Leave the drift state and restart the detectors (the stream's level changed on purpose,
        e.g. a new model was promoted); the reference levels restart too."""
        self.in_drift = False
        self._fired.clear()
        self._quiet = 0
        self._persist = dict.fromkeys(self._persist, 0)
        self._nmse_ref.values.clear()
        self._bler_ref.values.clear()
        self._recent.values.clear()
        self._new_detectors()

    def update(self, sample: KpmSample) -> list[DriftEvent]:
        """Feed one report; return the detectors that fired now (each once per drift episode)."""
        self.reports += 1
        hits = list(self._statistical(sample.nmse_db)) + list(self._guards(sample))
        if hits or any(self._persist.values()):
            self._quiet = 0
        else:
            self._quiet += 1
            if self.in_drift and self._quiet >= self.config.clear_after_reports:
                self.in_drift = False
                self._fired.clear()
        if not self.in_drift:
            self._push_references(sample)
        events = []
        for detector, value, reference in hits:
            if detector not in self._fired:
                self._fired.add(detector)
                events.append(DriftEvent(self.key, detector, self.reports, value, reference))
        if events:
            self.in_drift = True
        return events

    def _push_references(self, sample: KpmSample) -> None:
        if sample.nmse_db is not None:
            self._nmse_ref.push(sample.nmse_db)
        if sample.bler is not None:
            self._bler_ref.push(sample.bler)

    def _statistical(self, nmse_db: float | None) -> Iterator[tuple[str, float, float]]:
        """Page-Hinkley (upward) and ADWIN (only if the mean rose by ``min_rise_db``)."""
        if nmse_db is None or not math.isfinite(nmse_db):
            return
        self._ph.update(nmse_db)
        if self._ph.drift_detected:
            yield PAGE_HINKLEY, nmse_db, self._nmse_ref.mean
        self._recent.push(nmse_db)
        before = self._adwin.estimation
        self._adwin.update(nmse_db)
        if self._adwin.drift_detected:
            # ADWIN reports a change in either direction; only a rise of the recent level over
            # the reference (the pre-drift level, else ADWIN's previous estimate) is drift.
            reference = self._nmse_ref.mean if self._nmse_ref.values else before
            if self._recent.mean - reference >= self.config.adwin.min_rise_db:
                yield ADWIN_DETECTOR, self._recent.mean, reference

    def _guards(self, sample: KpmSample) -> Iterator[tuple[str, float, float]]:
        """The absolute guards that have held for ``persistence_reports`` reports."""
        g = self.config.guards
        nmse, ratio, bler = sample.nmse_db, sample.fallback_ratio, sample.bler
        limit = g.baseline_nmse_db + g.baseline_margin_db
        conditions = {
            BASELINE_GUARD: (nmse is not None and nmse > limit, nmse, limit),
            FALLBACK_GUARD: (ratio is not None and ratio > g.fallback_ratio_max, ratio,
                             g.fallback_ratio_max),
            BLER_GUARD: (self._bler_rising(nmse, bler), bler, self._bler_ref.mean),
        }
        for name, (holds, value, reference) in conditions.items():
            self._persist[name] = self._persist[name] + 1 if holds else 0
            if self._persist[name] >= g.persistence_reports:
                yield name, float(value if value is not None else math.nan), reference

    def _bler_rising(self, nmse_db: float | None, bler: float | None) -> bool:
        g = self.config.guards
        if nmse_db is None or bler is None or not (self._bler_ref.ready and self._nmse_ref.ready):
            return False
        return (bler - self._bler_ref.mean > g.bler_rise_max
                and nmse_db - self._nmse_ref.mean > g.nmse_rise_db)


class DriftMonitor:
    """One ``StreamDetector`` per stream, created on the stream's first report.

    Memory is bounded: ``streams`` is kept in order of last report, so ``evict`` drops, from the
    least recently heard end, streams silent for ``stream_idle_s`` and any beyond
    ``max_streams`` — O(1) per report amortised. Times are seconds on the caller's clock.
    """

    def __init__(self, config: DriftConfig) -> None:
        self.config = config
        self.streams: OrderedDict[StreamKey, StreamDetector] = OrderedDict()
        self._last_seen: dict[StreamKey, float] = {}

    def observe(self, sample: KpmSample, now: float = 0.0) -> list[DriftEvent]:
        """Route ``sample`` (received at ``now``) to its stream's detector; return that stream's
        new detections."""
        stream = self.streams.get(sample.key)
        if stream is None:
            stream = self.streams[sample.key] = StreamDetector(sample.key, self.config)
        else:
            self.streams.move_to_end(sample.key)
        self._last_seen[sample.key] = now
        return stream.update(sample)

    def evict(self, now: float) -> list[StreamKey]:
        """Drop streams not heard from since ``now - stream_idle_s`` and the least recently heard
        beyond ``max_streams``; return their keys."""
        evicted = []
        idle_before = now - self.config.stream_idle_s
        while self.streams:
            key = next(iter(self.streams))
            if len(self.streams) <= self.config.max_streams and \
                    self._last_seen[key] >= idle_before:
                break
            del self.streams[key], self._last_seen[key]
            evicted.append(key)
        return evicted

    def reset(self, e2_node: str) -> None:
        """Reset every stream of ``e2_node`` (after a rollout changed the model it runs)."""
        for key, stream in self.streams.items():
            if key.e2_node == e2_node:
                stream.reset()

    def reconfigure(self, config: DriftConfig) -> None:
        """Apply new thresholds: streams restart with fresh detectors."""
        self.config = config
        self.streams.clear()
        self._last_seen.clear()
