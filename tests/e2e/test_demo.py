"""End to end: ``kdran demo --fast`` closes the loop, and Ctrl-C leaves nothing behind.

The first test runs the whole fast demo (tiny preset, synthetic channels; models prepared once
into ``runs/demo-tiny/`` and reused) in a subprocess and checks its ``summary.json``. The second
interrupts a demo while its components run and checks that no process of it survives.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kdran.demo_procs import descendants
from kdran.demo_report import SUMMARY_KEYS

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 300


def _demo(out: Path) -> list[str]:
    return [sys.executable, "-m", "kdran.cli", "demo", "--fast", "--out", str(out)]


def test_fast_demo_closes_the_loop(tmp_path: Path) -> None:
    out = tmp_path / "report"
    run = subprocess.run(_demo(out), cwd=REPO, capture_output=True, text=True,
                         timeout=DEMO_TIMEOUT_S)
    summary = json.loads((out / "summary.json").read_text())
    promoted = bool(summary["promoted_version"])
    # The demo exits 0 only on a promotion. With AR-refining models the deployed student often
    # copes with the shift well enough that the re-distilled shadow is not promote_margin_db
    # better; the loop must then still close with a measured discard (exit 1), never an error.
    assert run.returncode == (0 if promoted else 1), run.stdout[-4000:] + run.stderr[-2000:]
    assert set(SUMMARY_KEYS) <= set(summary)
    assert summary["false_alarms"] == 0
    assert summary["shift_at_s"] is not None
    assert summary["drift_detected_at_s"] is not None
    assert summary["drift_detected_at_s"] >= summary["shift_at_s"]
    assert summary["nmse_db_after_shift"] > summary["nmse_db_before_shift"]
    assert summary["failed_rpcs"] == 0
    assert (out / "timeline.png").stat().st_size > 10_000
    assert summary["initial_version"] in summary["cards"]
    for version in summary["cards"]:
        assert json.loads((out / "cards" / f"{version}.json").read_text())["version"] == version
    if not promoted:
        assert "succeeded, rollout discarded" in summary["outcome"], summary["outcome"]
        assert "not better than active" in run.stdout, run.stdout[-4000:]
        return
    assert summary["promoted_version"] != summary["initial_version"]
    assert summary["promoted_version"] in summary["cards"]
    assert summary["nmse_db_after_promotion"] < summary["nmse_db_after_shift"]


def _wait_for(path: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear in {path} within {timeout_s} s")


def test_sigint_stops_every_process(tmp_path: Path) -> None:
    out = tmp_path / "report"
    log = tmp_path / "demo.out"
    with log.open("w") as sink:
        demo = subprocess.Popen(_demo(out), cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_for(log, "DU emulator:", DEMO_TIMEOUT_S)
        family = descendants(demo.pid)
        assert len(family) >= 3  # dApp, xApp, DU (and their children)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 130
    finally:
        if demo.poll() is None:
            demo.kill()
    text = log.read_text()
    survivors = [pid for pid in family if _alive(pid)]
    assert survivors == [], f"processes left behind: {survivors}\n{text[-3000:]}"
    assert "stopping every process" in text
    run_dir = re.search(r"run directory (\S+) ", text)
    assert run_dir is not None and not Path(run_dir.group(1)).exists()
    port = re.search(r"dApp serving on 127\.0\.0\.1:(\d+)", text)
    assert port is not None
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", int(port.group(1)))) != 0  # nobody listens


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
