"""ONNX Runtime latency of a model file on this machine: p50 / p99 in microseconds.

One intra-op thread, batch 1 (one UE's prediction, as the dApp serves it), warm-up runs first, then
``runs`` timed ``session.run`` calls with ``time.perf_counter_ns``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csi.model_io import INPUT_NAME
from csi.presets import Preset
from distill.export import ort_session


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in µs."""

    p50_us: float
    p99_us: float


def measure_latency(path: Path, preset: Preset, runs: int = 300, warmup: int = 30,
                    batch: int = 1, threads: int = 1, seed: int = 0) -> Latency:
    """Time ``runs`` ONNX Runtime calls of ``path`` on a random unit-power input."""
    if runs < 1:
        raise ValueError(f"latency needs at least one run, got {runs}")
    session = ort_session(path, threads)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, preset.history, preset.n_ant, preset.n_rb, 2)).astype(
        np.float32)
    feed = {INPUT_NAME: x / np.sqrt(np.mean(x ** 2))}
    for _ in range(warmup):
        session.run(None, feed)  # type: ignore[attr-defined]
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter_ns()
        session.run(None, feed)  # type: ignore[attr-defined]
        times[i] = (time.perf_counter_ns() - start) / 1e3
    return Latency(float(np.percentile(times, 50)), float(np.percentile(times, 99)))
