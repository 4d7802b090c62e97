"""The accuracy benchmark harness: rows, bins, retention, table and plot on synthetic data."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from csi.presets import TINY
from csi.synthetic import synthetic_set
from distill.bench_accuracy import (
    AccuracyRow,
    classical_baselines,
    evaluate_set,
    format_table,
    markdown_table,
    plot_vs_speed,
    retention,
    speed_bins,
)


def test_speed_bins_cover_only_populated_ranges() -> None:
    assert speed_bins(np.array([12.0, 35.0, 95.0])) == [(12.0, 30.0), (30.0, 40.0), (70.0, 95.0)]
    assert speed_bins(np.array([150.0, 290.0])) == [(150.0, 180.0), (240.0, 290.0)]


def test_evaluate_set_rows_and_ordering(tmp_path: Path) -> None:
    data = synthetic_set(TINY, 48, speed_range_kmh=(40.0, 100.0), snr_db=18.0, n_paths=4, seed=5)
    rows = evaluate_set(classical_baselines(18.0, TINY), data, "test", TINY)
    overall = {r.predictor: r for r in rows if r.speed_bin == "all"}
    assert set(overall) == {"outdated", "ar", "kalman", "ar_ad"}        # tiny: too short for ar14
    assert all(len(r.nmse_db_per_step) == TINY.horizon for r in rows)
    assert sum(r.n for r in rows if r.predictor == "ar" and r.speed_bin != "all") >= 48
    assert overall["ar"].nmse_db < overall["outdated"].nmse_db
    assert 0.0 <= overall["ar"].beam_top1 <= overall["ar"].beam_top3 <= 1.0
    assert overall["ar"].rate_loss < overall["outdated"].rate_loss
    table = format_table(rows)
    assert "test:all" in table and "kalman" in table
    plot = tmp_path / "acc.png"
    plot_vs_speed(rows, plot, "t")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_retention_uses_the_test_set_overall_rows() -> None:
    def row(name: str, value: float) -> AccuracyRow:
        return AccuracyRow(name, "test", "all", 10, value, [value], 0.5, 0.8, 0.1)

    rows = [row("outdated", -2.0), row("teacher", -12.0), row("student_kd", -11.8),
            row("student_scratch", -7.0)]
    assert retention(rows) == {"student_kd": 0.98, "student_scratch": 0.5}
    assert retention(rows[:1]) == {}


def test_markdown_table_is_stamped_and_marks_the_best_row() -> None:
    data = synthetic_set(TINY, 24, speed_range_kmh=(10.0, 100.0), snr_db=18.0, n_paths=4, seed=2)
    rows = [asdict(r) for name in ("test", "heldout-speed")
            for r in evaluate_set(classical_baselines(18.0, TINY), data, name, TINY)]
    text = markdown_table({"preset": "tiny", "rows": rows, "retention": {},
                           "machine": "Test CPU, 2 cores", "created_at": "2026-12-08T00:00:00Z"})
    lines = text.splitlines()
    assert lines[0].startswith("| predictor | test |") and "heldout-speed" in lines[0]
    assert {line.split("|")[1].strip() for line in lines[2:6]} == {"outdated", "ar", "kalman",
                                                                    "ar_ad"}
    assert sum("**" in line.split("|")[2] for line in lines[2:6]) == 1   # one best on test
    assert "Test CPU, 2 cores" in text and "2026-12-08T00:00:00Z" in text
