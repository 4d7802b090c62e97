"""``kdran bench load``: N DU streams x M UEs against one dApp on localhost, with rollout events.

A ``kdran dapp serve`` subprocess serves a synthetic student (``dapp.onnx_models``, random
weights: latency and stability only). ``streams`` client threads each open one ``Observe`` stream
(one DU), start ``ues`` UEs with a history, then send SRS deltas round-robin over their UEs in a
closed loop (one message in flight per stream) for ``seconds``. During the run the control plane
deploys a shadow candidate (at 25 % of the run), promotes it (hot swap, 50 %) and deploys the
next shadow candidate (75 %), so the data plane is measured through a full rollout.

Reported (DESIGN.md section 8): ``predictions_per_s`` (answers with a prediction per second,
sustained over the timed window), ``p50_us`` / ``p99_us`` (client round trip of one message),
``errors`` (failed RPCs, data and control plane; goal 0) and ``rss_growth_mb`` (resident memory
of the dApp process at the end minus after warm-up, MiB; goal flat). Loading a model is a step
up in RSS (an ONNX Runtime session, its arena and I/O buffers), not a leak, so the result also
has ``rss_trace_mb`` (one sample per second) and ``rss_steady_growth_mb``: the growth from one
second after the last rollout event to the end, where no model is loaded.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csi.presets import Preset, get_preset
from csi.synthetic import multipath_channels
from dapp.artifact import MODEL_FILE, write_artifact
from dapp.bench import SYNTHETIC_HIDDEN, machine_info, served
from dapp.malloc import retain_freed_memory

VERSIONS = ("load-a", "load-b", "load-c")        # seed (active), candidate 1, candidate 2
WARMUP_FRACTION = 0.1


@dataclass(frozen=True)
class LoadSettings:
    """What to run: ``streams`` x ``ues`` for ``seconds`` on ``preset``."""

    preset: Preset
    streams: int
    ues: int
    seconds: float

    def __post_init__(self) -> None:
        if self.streams < 1 or self.ues < 1 or self.seconds <= 0:
            raise ValueError("streams and ues must be >= 1 and seconds > 0")


@dataclass
class StreamStats:
    """What one stream saw in the timed window: latencies (s) and errors."""

    latencies: list[float] = field(default_factory=list)
    predictions: int = 0
    errors: list[str] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _artifacts(preset: Preset, workdir: Path) -> dict[str, Path]:
    import onnx

    from dapp.onnx_models import synthetic_student

    dirs = {}
    for seed, version in enumerate(VERSIONS):
        directory = workdir / version
        directory.mkdir(parents=True)
        onnx.save(synthetic_student(preset, version, hidden=SYNTHETIC_HIDDEN, seed=seed),
                  directory / MODEL_FILE)
        write_artifact(directory, directory / MODEL_FILE, {"version": version, "synthetic": True})
        dirs[version] = directory
    return dirs


def _stream(target: str, k: int, cfg: LoadSettings, chans: np.ndarray, timed: threading.Event,
            stop: threading.Event, stats: StreamStats) -> None:
    """One DU: start its UEs, then round-robin SRS deltas until ``stop``; a failed stream is
    counted and reopened."""
    import grpc

    from dapp.client import DappClient
    from dapp.messages import Observation

    preset, steps = cfg.preset, chans.shape[1]
    ues = [f"du{k}-ue{u}" for u in range(cfg.ues)]
    with DappClient(target, timeout_s=30.0) as client:
        slot = preset.history - 1
        while not stop.is_set():
            try:
                with client.open_stream() as stream:
                    for u, ue in enumerate(ues):
                        stream.send(Observation(ue, slot, history=chans[u, :preset.history]))
                    while not stop.is_set():
                        slot += 1
                        for u, ue in enumerate(ues):
                            t0 = time.perf_counter()
                            answer = stream.send(Observation(ue, slot, srs=chans[u, slot % steps]))
                            if timed.is_set():
                                stats.latencies.append(time.perf_counter() - t0)
                                stats.predictions += answer.ready
            except grpc.RpcError as err:
                stats.errors.append(f"stream {k}: {err.code().name}: {err.details()}")
                slot += preset.history + 1                 # restart the UEs after a gap


def _rollout(target: str, dirs: dict[str, Path], cfg: LoadSettings,
             started: float, events: list[dict[str, Any]], errors: list[str]) -> None:
    """Shadow candidate at 25 %, hot swap (promote) at 50 %, next candidate at 75 %."""
    import grpc

    from dapp.client import DappClient

    plan = [(0.25, "deploy_shadow", VERSIONS[1]), (0.5, "promote", VERSIONS[1]),
            (0.75, "deploy_shadow", VERSIONS[2])]
    with DappClient(target, timeout_s=60.0) as client:
        for fraction, action, version in plan:
            time.sleep(max(0.0, started + fraction * cfg.seconds - time.perf_counter()))
            t0 = time.perf_counter()
            try:
                if action == "promote":
                    client.promote(version)
                else:
                    client.deploy_model(dirs[version], version, "shadow")
            except grpc.RpcError as err:
                errors.append(f"{action} {version}: {err.code().name}: {err.details()}")
            events.append({"at_s": round(t0 - started, 2), "action": action,
                           "version": version, "ms": round((time.perf_counter() - t0) * 1e3, 1)})


def run(cfg: LoadSettings) -> dict[str, Any]:
    """Run the load; returns the JSON object (keys in the module docstring, plus context)."""
    retain_freed_memory()
    steps = cfg.preset.history + 256
    chans = multipath_channels(cfg.preset, cfg.ues, 30.0, n_paths=8, steps=steps, seed=7)
    with tempfile.TemporaryDirectory(prefix="kdran-load-") as tmp:
        dirs = _artifacts(cfg.preset, Path(tmp) / "models")
        with served(dirs[VERSIONS[0]], cfg.preset, Path(tmp) / "serve") as dapp:
            stats = [StreamStats() for _ in range(cfg.streams)]
            timed, stop = threading.Event(), threading.Event()
            threads = [threading.Thread(target=_stream, name=f"load-{k}",
                                        args=(dapp.tcp, k, cfg, chans, timed, stop, stats[k]))
                       for k in range(cfg.streams)]
            for t in threads:
                t.start()
            time.sleep(max(1.0, WARMUP_FRACTION * cfg.seconds))          # warm-up, untimed
            rss_start = rss_mb(dapp.pid)
            events: list[dict[str, Any]] = []
            control_errors: list[str] = []
            started = time.perf_counter()
            timed.set()
            rollout = threading.Thread(target=_rollout, args=(dapp.tcp, dirs, cfg, started,
                                                              events, control_errors))
            rollout.start()
            trace = _sample_rss(dapp.pid, started + cfg.seconds)
            timed.clear()
            elapsed = time.perf_counter() - started
            stop.set()
            for t in [*threads, rollout]:
                t.join(timeout=120)
            rss_end = rss_mb(dapp.pid)
    return _result(cfg, stats, control_errors, events, elapsed, rss_start, rss_end, trace)


def _sample_rss(pid: int, until: float) -> list[tuple[float, float]]:
    """``(seconds since now, RSS MiB)`` once a second until ``until`` (perf_counter)."""
    t0 = time.perf_counter()
    trace = []
    while (now := time.perf_counter()) < until:
        trace.append((round(now - t0, 2), round(rss_mb(pid), 1)))
        time.sleep(min(1.0, max(0.0, until - time.perf_counter())))
    return trace


def _result(cfg: LoadSettings, stats: list[StreamStats], control_errors: list[str],
            events: list[dict[str, Any]], elapsed: float, rss_start: float,
            rss_end: float, trace: list[tuple[float, float]]) -> dict[str, Any]:
    latencies = np.concatenate([np.asarray(s.latencies) for s in stats]) * 1e6
    errors = [e for s in stats for e in s.errors] + control_errors
    if latencies.size == 0:
        raise RuntimeError(f"no answers in the timed window; errors: {errors[:5]}")
    quiet_from = max((e["at_s"] + e["ms"] / 1e3 for e in events), default=0.0) + 1.0
    quiet = [rss for at, rss in trace if at >= quiet_from]
    return {
        "predictions_per_s": round(sum(s.predictions for s in stats) / elapsed, 1),
        "p50_us": round(float(np.percentile(latencies, 50)), 1),
        "p99_us": round(float(np.percentile(latencies, 99)), 1),
        "errors": len(errors),
        "rss_growth_mb": round(rss_end - rss_start, 2),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_steady_growth_mb": round(rss_end - quiet[0], 2) if quiet else None,
        "rss_trace_mb": trace,
        "messages": int(latencies.size),
        "streams": cfg.streams,
        "ues_per_stream": cfg.ues,
        "seconds": round(elapsed, 2),
        "preset": cfg.preset.name,
        "synthetic_student": True,
        "events": events,
        "error_samples": errors[:10],
        "machine": machine_info(1)["cpu"],
    }


def format_table(result: dict[str, Any]) -> str:
    """Human-readable summary of a ``run`` result."""
    lines = [f"kdran bench load: {result['streams']} streams x {result['ues_per_stream']} UEs, "
             f"{result['seconds']:.1f} s, preset {result['preset']} (synthetic student), "
             f"{result['machine']}",
             f"{'predictions/s':>14} {'p50 µs':>9} {'p99 µs':>9} {'errors':>7} "
             f"{'RSS growth MiB':>15}",
             f"{result['predictions_per_s']:>14.0f} {result['p50_us']:>9.1f} "
             f"{result['p99_us']:>9.1f} {result['errors']:>7} {result['rss_growth_mb']:>15.2f}",
             f"RSS {result['rss_start_mb']:.1f} -> {result['rss_end_mb']:.1f} MiB over "
             f"{result['messages']} messages; after the last model load: "
             f"{result['rss_steady_growth_mb']} MiB"]
    lines += [f"  t={e['at_s']:>6.2f} s  {e['action']:<14} {e['version']:<8} {e['ms']:>8.1f} ms"
              for e in result["events"]]
    lines += [f"  error: {e}" for e in result["error_samples"]]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """CLI handler: run, print the table, write JSON if asked; exit 1 if there were errors."""
    result = run(LoadSettings(get_preset(args.preset), args.streams, args.ues, args.seconds))
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if result["errors"] else 0
