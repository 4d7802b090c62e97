"""A bounded atheris run of the E2 decoders (``fuzz_e2.py``) in the default test run: a few
seconds from the valid seeds; it passes when libFuzzer found no input that raises anything but
``E2DecodeError``. ``make fuzz`` runs the same harness for minutes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).with_name("fuzz_e2.py")
ROOT = Path(__file__).resolve().parents[2]
SECONDS = 4


def test_e2_decoders_raise_only_decode_errors_under_atheris(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    run = subprocess.run(
        [sys.executable, str(HARNESS), f"-max_total_time={SECONDS}", "-seed=1",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1", str(corpus)],
        capture_output=True, text=True, timeout=SECONDS + 90, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "KDRAN_FUZZ_INSTRUMENT": "xapp"})
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert run.returncode == 0 and not crashes, run.stderr[-3000:]
    executed = int(next(line.split(":")[-1] for line in run.stderr.splitlines()
                        if line.startswith("stat::number_of_executed_units")))
    assert executed > 200  # it really fuzzed, from the seeds
    assert len(list(corpus.iterdir())) > len([p for p in corpus.iterdir()
                                              if p.name.startswith("seed-")])
