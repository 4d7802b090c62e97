"""``kdran bench accuracy --robustness``: NMSE of every predictor vs SRS SNR and vs UE speed.

Two sweeps over the same predictors (classical baselines, Kalman told the SNR, plus the learned
predictors of a distillation run, with its robust-distillation stage ``student_robust`` after
``student_kd`` when the run has one, see ``distill.robust``):

- **SNR sweep** on the test set: the clean channels of the set are re-noised at each sweep SNR (dB)
  with ``csi.dataset.ChannelSet.observed`` and a fixed seed (the set's own noise seed unless given),
  so one Gaussian draw is scaled to each SNR (common random numbers: the curve is smooth and the
  point at the set's native SNR equals the plain accuracy bench). The future stays clean.
- **Speed sweep** on the test and held-out-speed sets at their native SNR, per speed bin in km/h
  (``distill.bench_accuracy.speed_bins``), up to 300 km/h.

JSON keys: ``preset``, ``snr_db`` (the sweep), ``snr_rows`` ``[{predictor, set, snr_db, n,
nmse_db}]``, ``speed_rows`` ``[{predictor, set, speed_bin, speed_kmh, snr_db, n, nmse_db}]``,
``eval_seconds``, ``machine``, ``created_at``. NMSE in dB (lower is better).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi.dataset import ChannelSet
from csi.metrics import nmse_db
from csi.predictors import Predictor
from csi.presets import Preset
from distill.bench_accuracy import classical_baselines, evaluate_set, first_n, format_grid

DEFAULT_SNR_DB = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
SNR_SET = "test"
SPEED_SETS = ("test", "heldout-speed")
PredictorFactory = Callable[[float], list[Predictor]]


@dataclass
class SnrRow:
    """A predictor on ``set`` with its history re-noised at ``snr_db`` (dB); NMSE in dB."""

    predictor: str
    set: str
    snr_db: float
    n: int
    nmse_db: float


@dataclass
class SpeedRow:
    """A predictor on one speed bin ``lo-hi`` (km/h, centre ``speed_kmh``) of ``set``; NMSE dB."""

    predictor: str
    set: str
    speed_bin: str
    speed_kmh: float
    snr_db: float
    n: int
    nmse_db: float


def parse_snr_list(text: str) -> list[float]:
    """``"0,5,10"`` -> ``[0.0, 5.0, 10.0]`` (dB); a clear ``ValueError`` for anything else."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--snr-db wants comma-separated numbers in dB, got {text!r}") from None
    if not values or not all(np.isfinite(values)):
        raise ValueError(f"--snr-db wants at least one finite SNR in dB, got {text!r}")
    return sorted(set(values))


def renoised(data: ChannelSet, snr_db: float, seed: int | None = None) -> ChannelSet:
    """``data`` with every sequence's SRS SNR set to ``snr_db`` (dB) and noise seed ``seed``.

    The clean channels ``h`` ``[batch, time, antenna, rb]`` are shared, not copied; the noisy
    estimate is then ``observed()`` (complex Gaussian, power ``mean|h|^2 / 10^(snr/10)`` per
    sequence), reproducible for a given seed. ``seed=None`` keeps the set's own noise seed.
    """
    if not np.isfinite(snr_db):
        raise ValueError(f"SNR must be finite, got {snr_db} dB")
    return dataclasses.replace(
        data, snr_db=np.full(len(data), snr_db, dtype=np.float32),
        noise_seed=data.noise_seed if seed is None else seed)


def sweep_snr(predictors_at: PredictorFactory, data: ChannelSet, preset: Preset,
              snrs: Sequence[float], set_name: str = SNR_SET,
              seed: int | None = None) -> list[SnrRow]:
    """NMSE of ``predictors_at(snr)`` on ``data`` re-noised at each SNR in ``snrs`` (dB)."""
    rows: list[SnrRow] = []
    for snr in snrs:
        history, future = renoised(data, snr, seed).split_time(preset.history)
        for predictor in predictors_at(snr):
            pred = predictor.predict(history, preset.horizon)
            rows.append(SnrRow(predictor.name, set_name, float(snr), len(data),
                               round(nmse_db(pred, future), 3)))
    return rows


def sweep_speed(predictors_at: PredictorFactory, sets: dict[str, ChannelSet],
                preset: Preset) -> list[SpeedRow]:
    """NMSE per speed bin of each set in ``sets`` (name -> set) at the set's native SNR."""
    rows: list[SpeedRow] = []
    for set_name, data in sets.items():
        snr = float(np.mean(data.snr_db))
        for r in evaluate_set(predictors_at(snr), data, set_name, preset):
            if r.speed_bin == "all":
                continue
            lo, hi = (float(edge) for edge in r.speed_bin.split("-"))
            rows.append(SpeedRow(r.predictor, set_name, r.speed_bin, (lo + hi) / 2.0,
                                 round(snr, 2), r.n, r.nmse_db))
    return rows


def predictor_factory(learned: list[Predictor], preset: Preset) -> PredictorFactory:
    """Classical baselines told the SNR (Kalman) followed by the fixed learned predictors."""
    return lambda snr: classical_baselines(snr, preset) + learned


def with_robust(learned: list[Predictor], robust: list[Predictor]) -> list[Predictor]:
    """``learned`` with the ``robust`` rows right after ``student_kd`` (at the end without it)."""
    names = [p.name for p in learned]
    at = names.index("student_kd") + 1 if "student_kd" in names else len(learned)
    return learned[:at] + robust + learned[at:]


def run_robustness(preset: Preset, data_root: Path, run_dir: Path | None,
                   snrs: Sequence[float] = DEFAULT_SNR_DB, n: int | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Both sweeps on the cached sets of ``preset`` (generated on a miss); the JSON object.

    ``n`` evaluates the first ``n`` sequences of each cached set (the cache itself is reused as
    is, never regenerated at another size).
    """
    from dapp.flops import cpu_peak_flops_per_core
    from distill.data import load_or_generate

    learned: list[Predictor] = []
    if run_dir is not None:
        from distill.evaluate import learned_predictors
        from distill.robust import robust_predictors

        learned = with_robust(learned_predictors(run_dir, preset),
                              robust_predictors(run_dir, preset))
    factory = predictor_factory(learned, preset)
    sets = {name: first_n(load_or_generate(preset, name, data_root, progress=progress), n)
            for name in dict.fromkeys((SNR_SET, *SPEED_SETS))}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    snr_rows = sweep_snr(factory, sets[SNR_SET], preset, snrs)
    seconds["snr_sweep"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    speed_rows = sweep_speed(factory, {name: sets[name] for name in SPEED_SETS}, preset)
    seconds["speed_sweep"] = round(time.perf_counter() - start, 3)
    return {"preset": preset.name, "snr_db": [float(s) for s in snrs],
            "n": {name: len(data) for name, data in sets.items()},
            "snr_rows": [asdict(r) for r in snr_rows],
            "speed_rows": [asdict(r) for r in speed_rows], "eval_seconds": seconds,
            "machine": f"{cpu_peak_flops_per_core()[1]}, {os.cpu_count()} cores",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def format_tables(snr_rows: list[SnrRow], speed_rows: list[SpeedRow]) -> str:
    """Two grids, NMSE in dB: predictors x SNR, and predictors x set:speed-bin."""
    snr_value = {(r.predictor, f"{r.snr_db:g} dB"): r.nmse_db for r in snr_rows}
    speed_value = {(r.predictor, f"{r.set}:{r.speed_bin}"): r.nmse_db for r in speed_rows}
    return "\n\n".join([
        format_grid("NMSE (dB) vs SRS SNR (test set, history re-noised)",
                    [r.predictor for r in snr_rows], list(dict.fromkeys(k[1] for k in snr_value)),
                    snr_value),
        format_grid("NMSE (dB) vs UE speed (set:bin in km/h, native SNR)",
                    [r.predictor for r in speed_rows],
                    list(dict.fromkeys(k[1] for k in speed_value)), speed_value)])


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _shade(ax: Any, lo: float, hi: float, label: str) -> None:
    """Labelled grey band over ``lo..hi`` on the x axis without changing the axis limits."""
    limits = ax.get_xlim()
    ax.axvspan(lo, hi, color="grey", alpha=0.12)
    ax.text(max(lo, limits[0]), 1.0, f" {label}", transform=ax.get_xaxis_transform(),
            va="top", ha="left", fontsize=8, color="dimgrey")
    ax.set_xlim(limits)


def plot_robustness(snr_rows: list[SnrRow], speed_rows: list[SpeedRow], path: Path, title: str,
                    preset: Preset | None = None) -> None:
    """2-panel PNG: NMSE (dB) vs SNR (dB) and vs speed-bin centre (km/h), a line per predictor.

    Each predictor keeps its colour, marker and line style in both panels (alternating solid and
    dashed, so predictors with near-equal NMSE stay distinguishable); one legend on the right.
    With ``preset`` its training SNR range and the speeds above its training range are shaded.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys([r.predictor for r in snr_rows] + [r.predictor for r in speed_rows]))
    cmap = plt.get_cmap("tab10")
    fig, (ax_snr, ax_speed) = plt.subplots(1, 2, figsize=(13, 4.8), dpi=120)
    for i, name in enumerate(names):
        style = {"color": cmap(i % cmap.N), "marker": MARKERS[i % len(MARKERS)],
                 "linestyle": "-" if i % 2 == 0 else "--", "markersize": 5, "label": name}
        snr_points = sorted((r.snr_db, r.nmse_db) for r in snr_rows if r.predictor == name)
        speed_points = sorted((r.speed_kmh, r.nmse_db) for r in speed_rows if r.predictor == name)
        for ax, points in ((ax_snr, snr_points), (ax_speed, speed_points)):
            if points:
                ax.plot(*zip(*points, strict=True), **style)
    if preset is not None:
        _shade(ax_snr, *preset.train_snr_db, "training SNR range")
        _shade(ax_speed, preset.train_speed_kmh[1], ax_speed.get_xlim()[1], "held-out speeds")
    ax_snr.set_xlabel("SRS estimation SNR (dB)")
    ax_snr.set_title("NMSE vs SNR (test set, history re-noised)")
    ax_speed.set_xlabel("UE speed (km/h, bin centre)")
    ax_speed.set_title("NMSE vs UE speed (native SNR)")
    for ax in (ax_snr, ax_speed):
        ax.set_ylabel("NMSE (dB, lower is better)")
        ax.grid(alpha=0.3)
    handles, labels = (ax_snr if snr_rows else ax_speed).get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=9, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0.0, 0.0, 0.86, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
