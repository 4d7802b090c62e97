"""``kdran bench e2``: the command runs, prints a table and writes the DESIGN.md section 8 keys."""

from __future__ import annotations

import json
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


def test_cli_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e2.json"
    assert main(["bench", "e2", "--seconds", "0.05", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["cell_reports_per_s"] > 0 and result["ue64_reports_per_s"] > 0
    assert {"cell_median_us", "cell_p99_us", "ue64_median_us", "ue64_p99_us"} <= set(result)
    assert "indications/s" in capsys.readouterr().out


def test_cli_help_states_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "e2", "--help"])
    assert "(default:" in capsys.readouterr().out.replace("\n", " ")
