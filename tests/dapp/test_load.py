"""``kdran bench load`` end to end on a short run: a real dApp subprocess, rollout events during
the run, zero errors and the DESIGN.md section 8 JSON keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdran.cli import main

KEYS = {"predictions_per_s", "p50_us", "p99_us", "errors", "rss_growth_mb"}


@pytest.mark.slow
def test_bench_load_short_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "load.json"
    code = main(["bench", "load", "--streams", "2", "--ues", "3", "--seconds", "4",
                 "--preset", "tiny", "--json", str(out)])
    result = json.loads(out.read_text())
    assert code == 0 and result["errors"] == 0, result["error_samples"]
    assert result.keys() >= KEYS
    assert result["predictions_per_s"] > 0 and 0 < result["p50_us"] <= result["p99_us"]
    assert [e["action"] for e in result["events"]] == ["deploy_shadow", "promote",
                                                       "deploy_shadow"]
    assert "predictions/s" in capsys.readouterr().out
