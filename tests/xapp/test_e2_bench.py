"""``kdran bench e2``: the command runs, prints a table and writes the DESIGN.md section 8 keys
(for the xApp's decode path) and both paths; ``KDRAN_E2_DECODER`` picks the xApp's path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdran.cli import main
from xapp.e2 import decode_indication
from xapp.e2.bench import UE_COUNT, cell_indication, time_decode, ue64_indication


def test_bench_payloads_decode_to_what_they_claim() -> None:
    (cell,) = decode_indication(cell_indication()).reports
    assert len(cell.measurements) == 8 and cell.ue_id is None
    ue_reports = decode_indication(ue64_indication()).reports
    assert len(ue_reports) == UE_COUNT and all(r.ue_id is not None for r in ue_reports)


def test_time_decode_counts_batches() -> None:
    calls: list[int] = []
    timing = time_decode(lambda: calls.append(1), seconds=0.0, batch=4)
    assert timing.messages == len(calls) == 12  # at least three batches
    assert timing.per_s > 0 and timing.p99_us >= timing.median_us > 0


def test_bench_payloads_decode_alike_on_both_paths() -> None:
    for payload in (cell_indication(), ue64_indication()):
        assert decode_indication(payload, fast=True) == decode_indication(payload, fast=False)


def test_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e2.json"
    assert main(["bench", "e2", "--seconds", "0.05", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["cell_reports_per_s"] > 0 and result["ue64_reports_per_s"] > 0
    keys = {"cell_reports_per_s", "cell_median_us", "cell_p99_us", "ue64_median_us", "ue64_p99_us"}
    assert keys <= set(result)
    assert result["decode_path"] == "fast" and set(result["paths"]) == {"fast", "library"}
    for path in result["paths"].values():
        assert keys <= set(path) and path["cell_p99_us"] >= path["cell_median_us"] > 0
    assert result["cell_median_us"] == result["paths"]["fast"]["cell_median_us"]
    assert result["paths"]["fast"]["cell_cold_median_us"] > 0
    profile = result["fast_profile"]
    assert "xapp/e2/aper.py" in profile["by_file"] and sum(profile["by_file"].values()) >= 0.8
    assert profile["top"][0]["calls_per_indication"] > 0
    printed = capsys.readouterr().out
    assert "indications/s" in printed and "library" in printed and "fast*" in printed


def test_decoder_env_selects_the_xapp_path() -> None:
    code = ("from xapp.e2.decoder_path import DEFAULT_PATH, use_fast;"
            "print(DEFAULT_PATH, use_fast(None), use_fast(True))")
    env = {**os.environ, "KDRAN_E2_DECODER": "library"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    assert run.stdout.split() == ["library", "False", "True"]
    env["KDRAN_E2_DECODER"] = "quick"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert run.returncode != 0 and "KDRAN_E2_DECODER must be 'fast' or 'library'" in run.stderr


def test_cli_help_states_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "e2", "--help"])
    assert "(default:" in capsys.readouterr().out.replace("\n", " ")
