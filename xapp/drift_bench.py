"""Calibration of the drift detectors on synthetic KPM streams (``kdran bench drift``).

Two experiments on a cell's per-report NMSE (dB), Gaussian around ``level_db`` with ``sigma_db``:

- *stationary*: ``stationary_reports`` reports without change; every detection is a false alarm;
- *step*: ``warmup_reports`` stationary reports, then the level jumps by ``step_db``; the delay is
  the number of reports from the step to the first detection (any detector), per run.

BLER and fallbacks are held at their stationary levels, so the guards that fire are the ones an
NMSE change alone triggers. Output keys: ``false_alarms``, ``false_alarms_per_1k_reports``,
``delay_reports`` (median, max, per detector first-to-fire counts), ``missed``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xapp.config import DriftConfig, config_path, load_controls
from xapp.drift import KpmSample, StreamDetector, StreamKey

_KEY = StreamKey("bench-node", "00101-000000001")


@dataclass(frozen=True)
class StreamShape:
    """The synthetic stream: stationary level and noise (dB), the step size (dB)."""

    level_db: float = -12.0
    sigma_db: float = 0.5
    step_db: float = 6.0


def _sample(nmse_db: float) -> KpmSample:
    return KpmSample(_KEY, nmse_db, predictions=1000, fallbacks=0, tb_total=10_000,
                     tb_errors=100)


def count_false_alarms(config: DriftConfig, shape: StreamShape, reports: int,
                       rng: np.random.Generator) -> Counter[str]:
    """Detections per detector on ``reports`` stationary reports (all false alarms)."""
    detector = StreamDetector(_KEY, config)
    fired: Counter[str] = Counter()
    for value in rng.normal(shape.level_db, shape.sigma_db, reports):
        for event in detector.update(_sample(float(value))):
            fired[event.detector] += 1
    return fired


def detection_delay(config: DriftConfig, shape: StreamShape, warmup: int, horizon: int,
                    rng: np.random.Generator) -> tuple[int | None, str, int]:
    """(reports from the step to the first detection or None, first detector, alarms before)."""
    detector = StreamDetector(_KEY, config)
    early = 0
    for value in rng.normal(shape.level_db, shape.sigma_db, warmup):
        early += len(detector.update(_sample(float(value))))
    shifted = rng.normal(shape.level_db + shape.step_db, shape.sigma_db, horizon)
    for index, value in enumerate(shifted, start=1):
        events = detector.update(_sample(float(value)))
        if events:
            return index, events[0].detector, early
    return None, "", early


def run_bench(config: DriftConfig, shape: StreamShape, stationary_reports: int, runs: int,
              warmup_reports: int, seed: int) -> dict[str, Any]:
    """Both experiments; the JSON-ready result."""
    rng = np.random.default_rng(seed)
    false_alarms = count_false_alarms(config, shape, stationary_reports, rng)
    delays: list[int] = []
    first: Counter[str] = Counter()
    missed = early = 0
    for _ in range(runs):
        delay, detector, alarms = detection_delay(config, shape, warmup_reports, 200, rng)
        early += alarms
        if delay is None:
            missed += 1
        else:
            delays.append(delay)
            first[detector] += 1
    total = sum(false_alarms.values())
    return {
        "stream": {"level_db": shape.level_db, "sigma_db": shape.sigma_db,
                   "step_db": shape.step_db},
        "stationary_reports": stationary_reports,
        "false_alarms": total,
        "false_alarms_by_detector": dict(false_alarms),
        "false_alarms_per_1k_reports": 1000.0 * total / stationary_reports,
        "step_runs": runs,
        "false_alarms_before_step": early,
        "delay_reports": {"median": statistics.median(delays) if delays else None,
                          "max": max(delays) if delays else None,
                          "first_detector": dict(first)},
        "missed": missed,
    }


def main(args: argparse.Namespace) -> int:
    """``kdran bench drift`` (arguments: ``xapp.cli``)."""
    controls, _ = load_controls(config_path(args.config))
    shape = StreamShape(args.level_db, args.sigma_db, args.step_db)
    result = run_bench(controls.drift, shape, args.reports, args.runs, args.warmup, args.seed)
    print(f"stationary: {result['false_alarms']} false alarms in {args.reports} reports "
          f"{result['false_alarms_by_detector']}")
    delay = result["delay_reports"]
    print(f"step +{args.step_db} dB: delay median {delay['median']} max {delay['max']} reports, "
          f"missed {result['missed']}/{args.runs}, first {delay['first_detector']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
