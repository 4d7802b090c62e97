"""``kdran bench accuracy``: NMSE of every predictor per horizon step, speed bin and data set.

Runs the classical baselines (outdated CSI, AR(6), AR(14), Kalman, angle-delay denoised AR)
and, with ``--run DIR``, the learned predictors of a distillation run (teacher, students) over the
preset's test set and held-out sets, all in one process on the same data. Prints a table, writes
JSON (``--json``; keys fixed by DESIGN.md section 8), a Markdown table stamped with the machine
and time (``--markdown``) and a PNG plot of NMSE vs UE speed (``--plot``). With
``--robustness`` it runs the SRS-SNR and UE-speed sweeps of ``distill.robustness`` instead.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi.codebook import best_beam, dft_codebook
from csi.dataset import ChannelSet
from csi.metrics import nmse_db, nmse_db_per_step, rate_loss, topk_beam_accuracy
from csi.predictors import LONG_AR_ORDER, AngleDelayAr, ArWiener, Kalman, OutdatedCsi, Predictor
from csi.presets import PRESETS, Preset, get_preset

DEFAULT_SETS = ("test", "heldout-speed", "heldout-profile", "heldout-28ghz")
# Speed-bin edges in km/h; a set is binned by the edges that fall inside its speed range.
SPEED_EDGES_KMH = (3.0, 10.0, 30.0, 40.0, 70.0, 100.0, 120.0, 180.0, 240.0, 300.0)


@dataclass
class AccuracyRow:
    """One table row: a predictor on one set and speed bin. NMSE in dB (lower is better)."""

    predictor: str
    set: str
    speed_bin: str              # "all" or "lo-hi" in km/h
    n: int
    nmse_db: float
    nmse_db_per_step: list[float]
    beam_top1: float            # best beam of the predicted first step vs the true one
    beam_top3: float
    rate_loss: float            # relative MRT rate loss at 10 dB SNR (0 = perfect CSI)
    predict_s: float = 0.0      # wall time of predict() over the whole set, seconds


def speed_bins(speeds: np.ndarray) -> list[tuple[float, float]]:
    """Bins ``[(lo, hi), ...]`` (km/h) over ``SPEED_EDGES_KMH`` that contain at least one speed."""
    lo_all, hi_all = float(np.min(speeds)), float(np.max(speeds))
    edges = [e for e in SPEED_EDGES_KMH if lo_all - 1e-6 <= e <= hi_all + 1e-6]
    edges = sorted({*edges, float(np.floor(lo_all)), float(np.ceil(hi_all))})
    bins = [(a, b) for a, b in itertools.pairwise(edges)]
    return [(a, b) for a, b in bins if np.any((speeds >= a) & (speeds <= b))]


def _bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}"


def evaluate_set(predictors: list[Predictor], data: ChannelSet, set_name: str,
                 preset: Preset) -> list[AccuracyRow]:
    """Rows for every predictor on ``data`` overall and per speed bin (same inputs for all)."""
    history, future = data.split_time(preset.history)
    codebook = dft_codebook(preset)
    true_beam = best_beam(future[:, 0], codebook)
    speeds = np.asarray(data.speed_kmh)
    masks = [("all", np.ones(len(data), dtype=bool))] + [
        (_bin_label(lo, hi), (speeds >= lo) & (speeds <= hi)) for lo, hi in speed_bins(speeds)]
    rows = []
    for predictor in predictors:
        start = time.perf_counter()
        pred = predictor.predict(history, preset.horizon)
        elapsed = round(time.perf_counter() - start, 3)
        gains = np.einsum("ba,nar->nbr", codebook.conj(), pred[:, 0])
        scores = np.sum(np.abs(gains) ** 2, axis=-1)
        for label, mask in masks:
            rows.append(AccuracyRow(
                predictor=predictor.name, set=set_name, speed_bin=label, n=int(mask.sum()),
                nmse_db=round(nmse_db(pred[mask], future[mask]), 3),
                nmse_db_per_step=[round(float(v), 3)
                                  for v in nmse_db_per_step(pred[mask], future[mask])],
                beam_top1=round(topk_beam_accuracy(scores[mask], true_beam[mask], 1), 4),
                beam_top3=round(topk_beam_accuracy(scores[mask], true_beam[mask], 3), 4),
                rate_loss=round(rate_loss(pred[mask], future[mask]), 4), predict_s=elapsed))
    return rows


def first_n(data: ChannelSet, n: int | None) -> ChannelSet:
    """The first ``n`` sequences of ``data`` (all of them for ``None``)."""
    if n is None or n >= len(data):
        return data
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    return data.subset(np.arange(n))


def classical_baselines(snr_db: float, preset: Preset) -> list[Predictor]:
    """The classical rows of every table: outdated CSI, AR(6) (``ar``), AR(14) (``ar14``, where
    the history holds 16 steps), Kalman (told the set's SRS SNR) and the angle-delay denoised AR
    (``ar_ad``, the strongest; it estimates the noise itself, order 14 or what the history
    allows)."""
    longer = ([ArWiener(LONG_AR_ORDER, name="ar14")]
              if preset.history - 2 >= LONG_AR_ORDER else [])
    return [OutdatedCsi(), ArWiener(), *longer, Kalman(snr_db=snr_db),
            AngleDelayAr.for_preset(preset)]


def retention(rows: list[AccuracyRow]) -> dict[str, float]:
    """(outdated - student) / (outdated - teacher) in dB on test/all, per student row."""
    overall = {r.predictor: r.nmse_db for r in rows if r.set == "test" and r.speed_bin == "all"}
    if "teacher" not in overall or "outdated" not in overall:
        return {}
    gap = overall["outdated"] - overall["teacher"]
    return {name: round((overall["outdated"] - value) / gap, 4)
            for name, value in overall.items() if name.startswith("student") and gap != 0}


def format_grid(title: str, row_names: list[str], columns: list[str],
                value: dict[tuple[str, str], float]) -> str:
    """A right-aligned text grid: ``row_names`` down, ``columns`` across, ``value[(row, col)]``.

    Rows are de-duplicated in first-seen order; a missing cell prints ``nan``.
    """
    rows = list(dict.fromkeys(row_names))
    headers = ["predictor", *columns]
    body = [[name] + [f"{value.get((name, col), float('nan')):.2f}" for col in columns]
            for name in rows]
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in body]
    return title + "\n" + "\n".join(lines)


def format_table(rows: list[AccuracyRow]) -> str:
    """Predictors down, set/speed-bin columns across, NMSE in dB."""
    value = {(r.predictor, f"{r.set}:{r.speed_bin}"): r.nmse_db for r in rows}
    columns = list(dict.fromkeys(key[1] for key in value))
    return format_grid("NMSE (dB) per set:speed-bin (km/h)", [r.predictor for r in rows],
                       columns, value)


def markdown_table(result: dict[str, Any]) -> str:
    """The accuracy result (``run_benchmark``'s JSON object) as a Markdown table: predictors
    down; NMSE dB on test overall, per test speed bin and on each held-out set across; stamped
    with the machine and time the JSON records. What a document shows is pasted from this."""
    rows = [AccuracyRow(**r) for r in result["rows"]]
    value = {(r.predictor, r.set if r.speed_bin == "all" else f"{r.set} {r.speed_bin}"): r.nmse_db
             for r in rows if r.speed_bin == "all" or r.set == "test"}
    seen = list(dict.fromkeys(key[1] for key in value))
    columns = sorted(seen, key=lambda c: (c != "test", not c.startswith("test"), seen.index(c)))
    best = {c: min(v for (_, col), v in value.items() if col == c) for c in columns}
    header = [c + (" km/h" if " " in c else "") for c in columns]
    lines = ["| predictor | " + " | ".join(header) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in dict.fromkeys(r.predictor for r in rows):
        cells = []
        for c in columns:
            v = value.get((name, c))
            text = "" if v is None else f"{v:.2f}".replace("-", "−")
            cells.append(f"**{text}**" if v is not None and v == best[c] else text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    retention = result.get("retention") or {}
    lines.append("")
    steps = len(rows[0].nmse_db_per_step)
    lines.append(f"NMSE in dB (clean-target, mean over the {steps} predicted "
                 f"steps; bold: best per column). Preset `{result['preset']}`; measured "
                 f"{result.get('created_at', '?')} on {result.get('machine', '?')} by "
                 f"`kdran bench accuracy`"
                 + (f"; retention {', '.join(f'{k} {v:.3f}' for k, v in retention.items())}"
                    if retention else "") + ".")
    return "\n".join(lines) + "\n"


def plot_vs_speed(rows: list[AccuracyRow], path: Path, title: str) -> None:
    """PNG: NMSE (dB) vs UE speed bin centre, one line per predictor (test + heldout-speed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name in dict.fromkeys(r.predictor for r in rows):
        points = sorted(
            (np.mean([float(x) for x in r.speed_bin.split("-")]), r.nmse_db) for r in rows
            if r.predictor == name and r.speed_bin != "all"
            and r.set in ("test", "heldout-speed"))
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
    ax.axvline(100.0, color="grey", linestyle=":", linewidth=1)
    ax.text(102.0, ax.get_ylim()[1], "held-out speeds", va="top", fontsize=8, color="grey")
    ax.set_xlabel("UE speed (km/h, bin centre)")
    ax.set_ylabel("NMSE (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    from distill.reports import save_figure

    save_figure(fig, path)


def run_benchmark(preset: Preset, sets: list[str], data_root: Path, run_dir: Path | None,
                  n: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluate every predictor on every set; returns the JSON object of DESIGN.md section 8."""
    from dapp.flops import cpu_peak_flops_per_core
    from distill.data import load_or_generate

    learned: list[Predictor] = []
    if run_dir is not None:
        from distill.evaluate import learned_predictors

        learned = learned_predictors(run_dir, preset)
    rows: list[AccuracyRow] = []
    seconds: dict[str, float] = {}
    for set_name in sets:
        # --n subsets the cached set; passing it to load_or_generate would regenerate (and
        # overwrite) the shared cache at another size.
        data = first_n(load_or_generate(preset, set_name, data_root, progress=progress), n)
        snr = float(np.mean(data.snr_db))
        start = time.perf_counter()
        rows += evaluate_set(classical_baselines(snr, preset) + learned, data, set_name, preset)
        seconds[set_name] = round(time.perf_counter() - start, 3)
    return {"preset": preset.name, "rows": [asdict(r) for r in rows],
            "retention": retention(rows), "eval_seconds": seconds,
            "machine": f"{cpu_peak_flops_per_core()[1]}, {os.cpu_count()} cores",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _write_json(result: dict[str, Any], path: Path | None) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")


def _plot_path(args: argparse.Namespace) -> Path | None:
    return args.plot or (args.json.with_suffix(".png") if args.json else None)


def _handle_robustness(args: argparse.Namespace, preset: Preset) -> int:
    from distill.robustness import (
        SnrRow,
        SpeedRow,
        format_tables,
        parse_snr_list,
        plot_robustness,
        run_robustness,
    )

    snrs = parse_snr_list(args.snr_db)
    result = run_robustness(preset, Path(args.data_root), args.run, snrs, n=args.n)
    snr_rows = [SnrRow(**r) for r in result["snr_rows"]]
    speed_rows = [SpeedRow(**r) for r in result["speed_rows"]]
    print(format_tables(snr_rows, speed_rows))
    _write_json(result, args.json)
    plot = _plot_path(args)
    if plot:
        plot_robustness(snr_rows, speed_rows, plot,
                        f"kdran {preset.name}: robustness to SRS noise and UE speed",
                        preset=preset)
        print(f"wrote {plot}")
    return 0


def _handle(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset)
    if args.robustness:
        return _handle_robustness(args, preset)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    result = run_benchmark(preset, sets, Path(args.data_root), args.run, n=args.n)
    rows = [AccuracyRow(**r) for r in result["rows"]]
    print(format_table(rows))
    if result["retention"]:
        print("retention:", json.dumps(result["retention"]))
    _write_json(result, args.json)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_table(result))
        print(f"wrote {args.markdown}")
    plot = _plot_path(args)
    if plot:
        plot_vs_speed(rows, plot, f"kdran {preset.name}: NMSE vs UE speed")
        print(f"wrote {plot}")
    return 0


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``kdran bench accuracy`` (imports nothing heavy: the dApp image has no torch)."""
    parser = bench.add_parser(
        "accuracy", help="NMSE per step, speed bin and held-out set for every predictor",
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", default="std", choices=sorted(PRESETS))
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS),
                        help="comma-separated data splits to evaluate")
    parser.add_argument("--data-root", default=os.environ.get("KDRAN_DATA", "data"),
                        help="dataset cache (generated with Sionna when missing)")
    parser.add_argument("--run", type=Path, default=None,
                        help="distillation run directory whose teacher/students become rows")
    parser.add_argument("--n", type=int, default=None,
                        help="evaluate only the first N sequences of each cached set")
    parser.add_argument("--json", type=Path, default=None, help="write the JSON result here")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the table as Markdown, stamped with machine and time")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG plot path (default: next to --json)")
    parser.add_argument("--robustness", action="store_true",
                        help="instead: NMSE vs SRS SNR (test set re-noised, seeded) and vs UE "
                             "speed (test + heldout-speed); --sets is ignored, --n takes the first "
                             "N cached sequences of each set")
    parser.add_argument("--snr-db", default="0,5,10,15,20,25,30",
                        help="with --robustness: comma-separated SRS SNR sweep in dB")
    parser.set_defaults(func=_handle)
