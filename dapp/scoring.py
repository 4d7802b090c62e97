"""Online accuracy without labels: a prediction is scored when the SRS of its slot arrives.

A prediction made at slot ``s`` for ``horizon`` steps is a ``Pending`` of its UE. When the
estimate of slot ``s + k + 1`` arrives, step ``k`` is scored with ``csi.metrics.nmse_per_sample``
(``||pred - srs||^2 / ||srs||^2`` over antenna and rb, linear) and the pending expires after its
last step. ``RollingNmse`` keeps the last ``window`` linear values per horizon step; summaries are
in dB (``csi.metrics.to_db``): the mean over the window (linear mean, then dB, like
``csi.metrics.nmse_db``), per step, and the 90th percentile of the per-value dB.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from csi.metrics import nmse_per_sample, to_db

FALLBACK_TRACK = "fallback-ar"


@dataclass
class Pending:
    """A prediction awaiting its SRS: ``future`` complex64 ``[horizon, antenna, rb]`` for slots
    ``base_slot + 1 .. base_slot + horizon``. ``track`` names whose accuracy it counts for (model
    version or ``FALLBACK_TRACK``); ``served`` is True when the DU received it.

    A shadow prediction is registered as a placeholder (``future`` None, ``horizon`` set) when its
    window is served and filled in by the background run; steps that arrive while it is still
    empty are not scored (only when that run was dropped: FIFO runs it before their scoring)."""

    track: str
    base_slot: int
    future: np.ndarray | None
    served: bool
    group: str
    horizon: int = 0

    def __post_init__(self) -> None:
        if self.future is not None:
            self.horizon = self.future.shape[0]

    def step_for(self, slot: int) -> int | None:
        """Horizon step predicting ``slot``, or None if ``slot`` is outside the horizon."""
        k = slot - self.base_slot - 1
        return k if 0 <= k < self.horizon else None

    def expired(self, slot: int) -> bool:
        """True once ``slot`` is at or past the last predicted slot."""
        return slot >= self.base_slot + self.horizon


Arrival = tuple[list[Pending], int, np.ndarray]
"""An SRS that arrived for a UE: (its pending predictions due at that slot, slot, srs
``[antenna, rb]``)."""


@dataclass(frozen=True)
class NmseSummary:
    """Rolling NMSE of one track or group. dB values are ``nan`` before the first score."""

    predictions: int
    scored: int
    nmse_db: float
    nmse_db_p90: float
    nmse_db_per_step: tuple[float, ...]


class RollingNmse:
    """The last ``window`` linear NMSE values per horizon step, plus lifetime counters."""

    def __init__(self, horizon: int, window: int) -> None:
        self.values = [deque[float](maxlen=window) for _ in range(horizon)]
        self.predictions = 0
        self.scored = 0

    def add(self, step: int, nmse: float) -> None:
        """Record a linear NMSE for horizon ``step``."""
        self.values[step].append(nmse)
        self.scored += 1

    def summary(self) -> NmseSummary:
        """Mean (linear, then dB), 90th percentile of dB values, and per-step means in dB."""
        steps = [np.fromiter(v, np.float64, len(v)) for v in list(self.values)]
        pooled = np.concatenate(steps)
        if pooled.size == 0:
            nan = float("nan")
            return NmseSummary(self.predictions, 0, nan, nan, tuple(nan for _ in steps))
        per_step = tuple(float(to_db(s.mean())) if s.size else float("nan") for s in steps)
        return NmseSummary(self.predictions, self.scored, float(to_db(pooled.mean())),
                           float(np.percentile(to_db(pooled), 90)), per_step)


@dataclass
class GroupCounters:
    """Served answers of one UE group: rolling NMSE over all steps and the fallback count."""

    nmse: RollingNmse
    fallbacks: int = 0


@dataclass
class ScoreBook:
    """Rolling accuracy per track (model version / fallback) and per UE group (served answers)."""

    horizon: int
    window: int = 2000
    tracks: dict[str, RollingNmse] = field(default_factory=dict)
    groups: dict[str, GroupCounters] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count_prediction(self, track: str, group: str | None, fallback: bool,
                         n: int = 1) -> None:
        """Count ``n`` predictions of ``track`` and, for answers served to a UE group, of
        ``group`` (None: not served, or stateless)."""
        with self.lock:
            self._track(track).predictions += n
            if group is not None:
                counters = self._group(group)
                counters.nmse.predictions += n
                counters.fallbacks += n if fallback else 0

    def score(self, pending: list[Pending], slot: int, srs: np.ndarray) -> None:
        """Score every pending prediction of one UE that covers ``slot`` against ``srs``
        ``[antenna, rb]`` (one vectorised ``nmse_per_sample`` call)."""
        self.score_many([(pending, slot, srs)])

    def score_many(self, arrivals: Sequence[Arrival]) -> None:
        """``score`` for the SRS of several UEs (e.g. one PredictBatch) in one vectorised
        ``nmse_per_sample`` call and one lock: ``arrivals`` holds (pending predictions of one
        UE, slot, srs ``[antenna, rb]``)."""
        hits = [(p, k, future[k], srs) for pending, slot, srs in arrivals for p in pending
                if (future := p.future) is not None and (k := p.step_for(slot)) is not None]
        if not hits:
            return
        preds = np.stack([pred for _, _, pred, _ in hits])[:, None]        # [n, 1, a, r]
        if len(arrivals) == 1:
            truth = np.broadcast_to(arrivals[0][2], preds.shape)
        else:
            truth = np.stack([srs for _, _, _, srs in hits])[:, None]
        values = nmse_per_sample(preds, truth)[:, 0]
        with self.lock:
            for (p, k, _, _), value in zip(hits, values, strict=True):
                self._track(p.track).add(k, float(value))
                if p.served:
                    self._group(p.group).nmse.add(k, float(value))

    def add_track(self, track: str) -> None:
        """Make ``track`` known (zero predictions) so that status lists a model from its load
        on, not from its first prediction."""
        with self.lock:
            self._track(track)

    def track_summaries(self) -> dict[str, NmseSummary]:
        """Summary per track."""
        with self.lock:
            return {name: stats.summary() for name, stats in self.tracks.items()}

    def group_summaries(self) -> dict[str, tuple[NmseSummary, int]]:
        """(summary, fallbacks) per UE group."""
        with self.lock:
            return {name: (c.nmse.summary(), c.fallbacks) for name, c in self.groups.items()}

    def _track(self, name: str) -> RollingNmse:
        stats = self.tracks.get(name)
        if stats is None:
            stats = self.tracks[name] = RollingNmse(self.horizon, self.window)
        return stats

    def _group(self, name: str) -> GroupCounters:
        counters = self.groups.get(name)
        if counters is None:
            counters = self.groups[name] = GroupCounters(RollingNmse(self.horizon, self.window))
        return counters
