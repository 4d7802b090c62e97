"""The KPM flood benchmark at a small size (the 2 000-cell run is ``kdran bench flood``), and
the bounds on per-stream state: idle streams and streams over ``drift.max_streams`` are evicted,
with their gauge series."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from xapp.config import DriftConfig
from xapp.drift import DriftMonitor, KpmSample, StreamKey
from xapp.flood import run_flood
from xapp.metrics import XappMetrics

ROOT = Path(__file__).resolve().parents[2]


def test_small_flood_with_churn_stays_bounded() -> None:
    result = run_flood(cells=20, seconds=3.0, churn=0.5, stream_idle_s=1.0)
    assert result.decode_failures == 0 and result.indications >= 80  # >= 4 periods
    assert result.indications_per_s > 0 and result.p99_us >= result.p50_us > 0
    assert result.keeps_up == (result.indications_per_s >= 20)
    # 10 of 20 cells are replaced per period and evicted 1 period after their last report.
    assert result.cells_seen > result.streams_max
    assert result.evicted == result.cells_seen - result.streams_end > 0
    assert result.streams_max <= 20 + 10 * 2


def test_monitor_evicts_idle_and_excess_streams_and_their_gauges() -> None:
    config = replace(DriftConfig(), stream_idle_s=10.0, max_streams=3)
    monitor, metrics = DriftMonitor(config), XappMetrics()
    keys = [StreamKey("gnb", f"cell-{i}") for i in range(5)]
    for t, key in enumerate(keys[:3]):
        monitor.observe(KpmSample(key, -12.0), now=float(t))
        metrics.cell_nmse_db.labels(cell=key.label).set(-12.0)
    monitor.observe(KpmSample(keys[0], -12.0), now=5.0)  # cell-0 heard again: now the newest
    monitor.observe(KpmSample(keys[3], -12.0), now=6.0)
    assert monitor.evict(6.0) == [keys[1]]  # over max_streams: the least recently heard
    assert monitor.evict(14.5) == [keys[2]]  # idle since t=2
    metrics.forget_cells([keys[1].label, keys[2].label, "never-set"])
    labels = {s.labels["cell"] for f in metrics.cell_nmse_db.collect() for s in f.samples}
    assert labels == {keys[0].label}
    assert list(monitor.streams) == [keys[0], keys[3]]


def test_bench_flood_cli_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "flood.json"
    run = subprocess.run([sys.executable, "-m", "kdran.cli", "bench", "flood", "--cells", "20",
                          "--seconds", "1", "--json", str(out)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    document = json.loads(out.read_text())
    assert document["cells"] == 20 and document["indications"] >= 20
    assert "indications/s sustained" in run.stdout
