"""``kdran dapp serve`` as a process configured by env vars: health, Prometheus names, SIGTERM;
``kdran bench latency`` JSON keys (slow)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dapp_helpers import MakeArtifact, doppler_channels, wait_for
from prometheus_client.parser import text_string_to_metric_families

from csi.presets import TINY
from dapp.cli import register
from dapp.client import DappClient
from dapp.messages import Observation
from kdran.cli import main
from kdran.net import free_port

ROOT = Path(__file__).resolve().parents[2]



def _documented_dapp_metrics() -> dict[str, str]:
    """``{name: type}`` from the dApp table of docs/METRICS.md."""
    text = (ROOT / "docs" / "METRICS.md").read_text()
    section = text.split("## dApp", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2).split()[0]
            for m in re.finditer(r"^\| `(kdran_dapp_\w+)` \| ([^|]+)\|", section, re.M)}


@pytest.fixture
def served(tmp_path: Path, make_artifact: MakeArtifact) -> Iterator[tuple[subprocess.Popen, str,
                                                                           int, Path]]:
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, KDRAN_DAPP_PRESET="tiny", KDRAN_DAPP_LISTEN=f"127.0.0.1:{port}",
               KDRAN_DAPP_METRICS_PORT=str(metrics_port),
               KDRAN_DAPP_STATE_DIR=str(tmp_path / "state"),
               KDRAN_DAPP_MODEL=str(make_artifact("linear", "lin-1")))
    proc = subprocess.Popen([sys.executable, "-m", "kdran", "dapp", "serve", "--uds",
                             str(tmp_path / "d.sock"), "--log-level", "WARNING"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, f"127.0.0.1:{port}", metrics_port, tmp_path / "d.sock"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_from_env_exports_documented_metrics(served: tuple[subprocess.Popen, str, int,
                                                                 Path],
                                                   make_artifact: MakeArtifact) -> None:
    proc, target, metrics_port, uds = served
    with DappClient(target) as client:
        client.wait_ready(30)
        assert client.health() == "SERVING"
        client.deploy_model(make_artifact("outdated", "out-2"), "out-2", "shadow")
        h = doppler_channels(1, 20)[0]
        observations = [Observation("u", 0, history=h[:1])]
        observations += [Observation("u", t, srs=h[t]) for t in range(1, 20)]
        list(client.observe(observations))
        status = wait_for(client.status, lambda s: all(m.scored > 0 for m in s.models)
                          and len(s.models) == 2)
    with DappClient(f"unix:{uds}") as client:
        assert client.health() == "SERVING"

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                  timeout=10).read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    names = {name for name, _ in samples}
    for name, kind in _documented_dapp_metrics().items():
        wanted = f"{name}_bucket" if kind == "histogram" else name
        assert wanted in names, f"{name} ({kind}) missing from /metrics"
    assert samples[("kdran_dapp_request_latency_seconds_bucket",
                    (("le", "1e-05"), ("rpc", "Observe")))] >= 0
    assert samples[("kdran_dapp_model_info", (("role", "shadow"), ("version", "out-2")))] == 1
    assert samples[("kdran_dapp_tracked_ues", ())] == 1
    assert samples[("kdran_dapp_cpu_wakeup_latency_limit_us", ())] == -1    # none asked for
    active = next(m for m in status.models if m.version == "lin-1")
    online = samples[("kdran_dapp_online_nmse_db", (("model_version", "lin-1"),
                                                    ("role", "active")))]
    assert online == pytest.approx(active.nmse_db, abs=0.5)   # later scores may have landed
    assert samples[("kdran_dapp_predictions_total",
                    (("model_version", "lin-1"), ("role", "active")))] == 20 - TINY.history + 1

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize("argv", [["dapp", "serve", "--help"], ["bench", "latency", "--help"]])
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="kdran")
    commands = parser.add_subparsers()
    bench = commands.add_parser("bench").add_subparsers()
    register(commands, bench)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(argv)
    assert exit_.value.code == 0
    assert "(default:" in capsys.readouterr().out


def test_env_sets_serve_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDRAN_DAPP_DEADLINE_US", "750")
    monkeypatch.setenv("KDRAN_DAPP_PRESET", "tiny")
    parser = argparse.ArgumentParser(prog="kdran")
    commands = parser.add_subparsers()
    register(commands, commands.add_parser("bench").add_subparsers())
    args = parser.parse_args(["dapp", "serve", "--preset", "std"])
    assert args.deadline_us == 750.0 and args.preset == "std"      # the flag wins


@pytest.mark.slow
def test_bench_latency_json(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    allowed = os.sched_getaffinity(0)
    code = main(["bench", "latency", "--preset", "tiny", "--iterations", "30", "--warmup", "3",
                 "--load-seconds", "0.5", "--load-streams", "2", "--breakdown",
                 "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert {"machine", "rows", "throughput_per_s"} <= set(result)
    assert result["synthetic_student"] is True and result["throughput_per_s"] > 0
    keys = {(r["model"], r["path"], r["batch"]) for r in result["rows"]}
    for path in ("inproc", "grpc_tcp", "grpc_uds"):
        for batch in (1, 16):
            assert ("student_int8", path, batch) in keys
    assert ("student_fp32", "inproc", 1) in keys and ("student_int8", "stream", 1) in keys
    assert all(r["p99_us"] >= r["p50_us"] > 0 for r in result["rows"])
    assert result["student_flops"] > 0 and 0 < result["student_peak_fraction"] < 1
    assert {"ort_run", "to_model_input", "engine_observe"} <= set(result["stages"])
    floor = result["grpc_floor"]
    assert set(floor) == {"grpc_tcp", "grpc_uds"}
    assert all(v["p99_us"] >= v["p50_us"] > 0 and v["n"] > 0 for v in floor.values())
    assert result["cpu_wakeup_latency_us"] is None                  # not asked for
    info = result["machine_info"]
    assert info["tcp_congestion_control"] == Path(
        "/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()
    assert os.sched_getaffinity(0) == allowed            # the bench gave its CPUs back
    placement = result["placement"]
    if len(allowed) > 1:                 # dApp on the last CPU, the client on the others
        assert placement == {"dapp_cpus": [max(allowed)],
                             "client_cpus": sorted(allowed - {max(allowed)})}
    else:
        assert placement is None
