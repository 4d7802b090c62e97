"""``kdran bench latency``: in-process and over-the-wire latency of the dApp's models.

Rows (DESIGN.md section 8): ``model`` in ``student_int8``, ``student_fp32``, ``teacher_ort``,
``teacher_torch``; ``path`` in
- ``inproc``: ``OnnxRunner.predict_with_beams`` in this process, normalisation included
  (``teacher_torch``: the torch.export program, loaded only here, same normalisation);
- ``grpc_tcp`` / ``grpc_uds``: client round trip to a ``kdran dapp serve`` subprocess over TCP
  loopback / a Unix socket: batch 1 = unary ``Predict`` with a full history, batch 16 =
  ``PredictBatch`` with one SRS delta for each of 16 tracked UEs;
- ``stream``: one ``Observe`` message (an SRS delta) and its answer on an open stream.
For the gRPC rows the dApp is pinned to the last CPU and the bench client to the others, as a
DU and its dApp would be placed (``dapp.affinity``); ``--no-pin`` lets them share every CPU.
The JSON's ``placement`` says which (null = shared). ``grpc_floor`` is the round trip of an empty
gRPC health check to the same dApp (TCP and UDS): what the gRPC stack and the wake-ups of the two
processes cost before any model work. ``--cpu-wakeup-latency-us N`` runs the gRPC rows under a
PM QoS CPU wake-up latency limit of N µs (``dapp.cpu_latency``; the dApp is started with the same
flag); the JSON's ``cpu_wakeup_latency_us`` is the limit in force, null when none.
``batch`` is 1 or 16 UEs; latencies are p50/p99 in µs. ``throughput_per_s`` is the sustained
prediction rate of ``--load-streams`` concurrent Observe streams (closed loop) and ``load_p99_us``
the p99 at that load. FLOPs come from the ONNX graph (``dapp.flops``).

Without ``--student``/``--student-fp32`` the bench builds a *synthetic* student
(``dapp.onnx_models.synthetic_student``: random weights, student-sized, std shape) and its
dynamic-INT8 version, and says so in the table and in the JSON (``"synthetic_student": true``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi.model_io import from_model_output, to_model_input
from csi.presets import Preset, get_preset
from csi.synthetic import multipath_channels
from dapp.affinity import can_pin, pinned
from dapp.artifact import MODEL_FILE, write_artifact
from dapp.cpu_latency import hold_cpu_latency
from dapp.flops import cpu_peak_flops_per_core, model_flops
from dapp.gc_freeze import freeze_startup_objects
from dapp.malloc import retain_freed_memory
from dapp.runner import OnnxRunner
from kdran.net import free_port

BATCHES = (1, 16)
SYNTHETIC_HIDDEN = 64


@dataclass(frozen=True)
class Row:
    """One measured configuration; latencies in µs over ``n`` calls."""

    model: str
    path: str
    batch: int
    p50_us: float
    p99_us: float
    n: int


def time_calls(fn: Callable[[int], object], iterations: int, warmup: int,
               max_seconds: float) -> np.ndarray:
    """Latencies in µs of ``fn(i)`` for ``i = 0..`` (``warmup`` untimed calls first), stopping
    after ``iterations`` calls or ``max_seconds``."""
    for i in range(warmup):
        fn(i)
    out = []
    stop = time.perf_counter() + max_seconds
    for i in range(warmup, warmup + iterations):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
        if t0 > stop:
            break
    return np.array(out) * 1e6


def _summary(samples: np.ndarray) -> dict[str, Any]:
    """``{"p50_us", "p99_us", "n"}`` of latencies in µs (the latency fields of a ``Row``)."""
    p50, p99 = np.percentile(samples, [50, 99])
    return {"p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1),
            "n": int(samples.size)}


def _row(model: str, path: str, batch: int, samples: np.ndarray) -> Row:
    return Row(model, path, batch, **_summary(samples))


@dataclass(frozen=True)
class BenchSettings:
    """What to run and for how long."""

    preset: Preset
    iterations: int
    warmup: int
    max_seconds: float
    threads: int
    load_seconds: float
    load_streams: int
    ues_per_stream: int


# -- models ------------------------------------------------------------------------------
def synthetic_students(preset: Preset, workdir: Path) -> dict[str, Path]:
    """Build the synthetic fp32 student artifact and its dynamic-INT8 quantisation."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from dapp.onnx_models import synthetic_student

    dirs = {}
    for name in ("student_fp32", "student_int8"):
        dirs[name] = workdir / name
        dirs[name].mkdir(parents=True, exist_ok=True)
    fp32 = dirs["student_fp32"] / MODEL_FILE
    onnx.save(synthetic_student(preset, "synthetic-fp32", hidden=SYNTHETIC_HIDDEN), fp32)
    logging.disable(logging.WARNING)          # its advice to pre-process does not apply here
    try:
        quantize_dynamic(fp32, dirs["student_int8"] / MODEL_FILE, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    int8 = onnx.load(str(dirs["student_int8"] / MODEL_FILE))
    for prop in int8.metadata_props:
        if prop.key == "version":
            prop.value = "synthetic-int8"
    onnx.save(int8, dirs["student_int8"] / MODEL_FILE)
    for name, directory in dirs.items():
        write_artifact(directory, directory / MODEL_FILE,
                       {"version": f"synthetic-{name[-4:]}", "synthetic": True,
                        "note": "random weights, latency only (dapp.onnx_models)"})
    return dirs


def _model_path(path: Path) -> Path:
    return path / MODEL_FILE if path.is_dir() else path


def _histories(preset: Preset, batch: int, steps: int) -> np.ndarray:
    return multipath_channels(preset, batch, 30.0, n_paths=8, steps=steps, seed=batch)


def _predict_ignoring_index(runner: OnnxRunner, history: np.ndarray, _i: int) -> object:
    return runner.predict_with_beams(history)


def inproc_rows(name: str, path: Path, cfg: BenchSettings) -> list[Row]:
    """ONNX Runtime in this process at batch 1 and 16."""
    runner = OnnxRunner(path, intra_threads=cfg.threads, inter_threads=1)
    rows = []
    for batch in BATCHES:
        history = _histories(cfg.preset, batch, cfg.preset.history)
        call = functools.partial(_predict_ignoring_index, runner, history)
        rows.append(_row(name, "inproc", batch,
                         time_calls(call, cfg.iterations, cfg.warmup, cfg.max_seconds)))
    return rows


def torch_rows(path: Path, cfg: BenchSettings) -> list[Row]:
    """The teacher as a ``torch.export`` program (``torch.export.save``), eager, one thread.
    torch is imported here and nowhere else in the dApp."""
    import torch

    torch.set_num_threads(cfg.threads)
    module = torch.export.load(str(path)).module()
    rows = []
    for batch in BATCHES:
        history = _histories(cfg.preset, batch, cfg.preset.history)

        def call(_i: int, h: np.ndarray = history) -> np.ndarray:
            model_in, scale = to_model_input(h)
            with torch.inference_mode():
                future = module(torch.from_numpy(model_in))[0].numpy()
            return from_model_output(future, scale)

        rows.append(_row("teacher_torch", "inproc", batch,
                         time_calls(call, cfg.iterations, cfg.warmup, cfg.max_seconds)))
    return rows


# -- gRPC paths --------------------------------------------------------------------------

@dataclass(frozen=True)
class Served:
    """A running ``kdran dapp serve`` subprocess: its gRPC targets and process id."""

    tcp: str
    uds: str
    pid: int


@contextlib.contextmanager
def served(artifact: Path, preset: Preset, workdir: Path,
           cpus: frozenset[int] = frozenset(), cpu_latency_us: int = -1) -> Iterator[Served]:
    """A ``kdran dapp serve`` subprocess on ``artifact``, ready (health SERVING); pinned to
    ``cpus`` when given; holding a CPU wake-up latency limit when ``cpu_latency_us >= 0``."""
    from dapp.client import DappClient

    workdir.mkdir(parents=True, exist_ok=True)
    port, sock = free_port(), workdir / "dapp.sock"
    log = (workdir / "serve.log").open("w")
    pin = ["--cpus", ",".join(map(str, sorted(cpus)))] if cpus else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdran", "dapp", "serve", "--model", str(artifact),
         "--listen", f"127.0.0.1:{port}", "--uds", str(sock), "--metrics-port", "0",
         "--state-dir", str(workdir / "state"), "--preset", preset.name, *pin,
         "--cpu-wakeup-latency-us", str(cpu_latency_us)],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        with DappClient(f"127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.wait_ready(1.0)
                    if client.health() == "SERVING":
                        break
                except Exception:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"dapp serve did not start, see {log.name}") from None
        yield Served(f"127.0.0.1:{port}", f"unix:{sock}", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def grpc_rows(name: str, tcp: str, uds: str, cfg: BenchSettings) -> list[Row]:
    """Unary Predict (batch 1), PredictBatch (batch 16) over TCP and UDS; Observe stream."""
    rows = []
    for path, target in (("grpc_tcp", tcp), ("grpc_uds", uds)):
        rows += _unary_rows(name, path, target, cfg)
    rows.append(_stream_row(name, tcp, cfg))
    return rows


def grpc_floor(tcp: str, uds: str, cfg: BenchSettings) -> dict[str, dict[str, Any]]:
    """``{"grpc_tcp"|"grpc_uds": {"p50_us", "p99_us", "n"}}`` of an empty round trip (gRPC
    health check) to the dApp: the transport's share of every gRPC row."""
    from dapp.client import DappClient

    floor = {}
    for path, target in (("grpc_tcp", tcp), ("grpc_uds", uds)):
        with DappClient(target) as client:
            floor[path] = _summary(time_calls(lambda _i: client.health(), cfg.iterations,
                                              cfg.warmup, cfg.max_seconds))
    return floor


def _unary_rows(name: str, path: str, target: str, cfg: BenchSettings) -> list[Row]:
    from dapp.client import DappClient
    from dapp.messages import Observation

    preset = cfg.preset
    steps = preset.history + 64
    start = preset.history - 1
    with DappClient(target) as client:
        history = _histories(preset, 1, preset.history)[0]
        single = time_calls(lambda _i: client.predict(history), cfg.iterations, cfg.warmup,
                            cfg.max_seconds)
        chans = _histories(preset, 16, steps)
        ues = [f"{path}-{u}" for u in range(16)]
        client.predict_batch([Observation(ue, start, history=chans[u, :preset.history])
                              for u, ue in enumerate(ues)])
        batch = time_calls(
            lambda i: client.predict_batch([Observation(ue, start + 1 + i, srs=chans[u, i % steps])
                                            for u, ue in enumerate(ues)]),
            cfg.iterations, cfg.warmup, cfg.max_seconds)
    return [_row(name, path, 1, single), _row(name, path, 16, batch)]


def _stream_row(name: str, tcp: str, cfg: BenchSettings) -> Row:
    from dapp.client import DappClient
    from dapp.messages import Observation

    preset = cfg.preset
    steps = preset.history + 64
    start = preset.history - 1
    with DappClient(tcp) as client, client.open_stream() as stream:
        chan = _histories(preset, 1, steps)[0]
        stream.send(Observation("stream-ue", start, history=chan[:preset.history]))
        samples = time_calls(
            lambda i: stream.send(Observation("stream-ue", start + 1 + i, srs=chan[i % steps])),
            cfg.iterations, cfg.warmup, cfg.max_seconds)
    return _row(name, "stream", 1, samples)


def sustained_load(tcp: str, cfg: BenchSettings) -> tuple[float, float]:
    """(predictions/s, p99 µs) of ``load_streams`` closed-loop Observe streams, each cycling
    over ``ues_per_stream`` UEs, for ``load_seconds``."""
    from dapp.client import DappClient
    from dapp.messages import Observation

    preset = cfg.preset
    steps = preset.history + 64
    chans = _histories(preset, cfg.ues_per_stream, steps)
    latencies: list[list[float]] = [[] for _ in range(cfg.load_streams)]
    stop_at = threading.Event()

    def worker(k: int) -> None:
        with DappClient(tcp) as client, client.open_stream() as stream:
            ues = [f"load-{k}-{u}" for u in range(cfg.ues_per_stream)]
            start = preset.history - 1
            for u, ue in enumerate(ues):
                stream.send(Observation(ue, start, history=chans[u, :preset.history]))
            i = 0
            while not stop_at.is_set():
                u, step = i % len(ues), i // len(ues)
                t0 = time.perf_counter()
                stream.send(Observation(ues[u], start + 1 + step, srs=chans[u, step % steps]))
                latencies[k].append(time.perf_counter() - t0)
                i += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(cfg.load_streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(cfg.load_seconds)
    stop_at.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    samples = np.concatenate([np.array(x) for x in latencies]) * 1e6
    return samples.size / elapsed, float(np.percentile(samples, 99))


def split_cpus(allowed: set[int]) -> tuple[frozenset[int], frozenset[int]] | None:
    """(dApp CPUs, client CPUs) for the gRPC rows: the last allowed CPU for the dApp, the rest
    for the client (a DU and its dApp do not share cores); None with a single CPU."""
    if len(allowed) < 2:
        return None
    dapp = frozenset({max(allowed)})
    return dapp, frozenset(allowed) - dapp


# -- where the time goes ----------------------------------------------------------------
def stage_breakdown(path: Path, cfg: BenchSettings) -> dict[str, dict[str, float]]:
    """p50/p99 µs of each stage of one Observe message (an SRS delta of one UE) in-process:
    proto decode, ring update + window copy, normalisation, ORT, rescaling, proto encode, and
    the whole ``Engine.observe`` (which adds validation, pending bookkeeping and top-k)."""
    from csi.model_io import from_model_output as rescale
    from dapp import convert
    from dapp.engine import Engine
    from dapp.messages import Observation

    preset, n = cfg.preset, cfg.iterations
    runner = OnnxRunner(path, intra_threads=cfg.threads)
    engine = Engine(preset)
    engine.set_models(active=runner)
    chan = _histories(preset, 1, preset.history + n + 1)[0]
    start = preset.history - 1
    engine.observe([Observation("ue", start, history=chan[:preset.history])])
    ue = engine.history.get("ue")
    stages: dict[str, list[float]] = {k: [] for k in (
        "proto_decode", "engine_observe", "proto_encode", "window_copy", "to_model_input",
        "ort_run", "from_model_output")}

    def timed(stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        stages[stage].append(time.perf_counter() - t0)
        return out

    for slot in range(start + 1, start + 1 + n):
        msg = convert.observation_to_proto(Observation("ue", slot, srs=chan[slot]))
        obs = timed("proto_decode", convert.observation_from_proto, msg)
        answers = timed("engine_observe", engine.observe, [obs])
        timed("proto_encode", convert.answer_to_proto, answers[0])
        window = timed("window_copy", ue.window, preset.history)[None]
        model_in, scale = timed("to_model_input", to_model_input, window)
        future, _ = timed("ort_run", runner.run_normalised, model_in)
        timed("from_model_output", rescale, future, scale)
    engine.close()
    return {k: {"p50_us": round(float(np.percentile(v, 50)) * 1e6, 1),
                "p99_us": round(float(np.percentile(v, 99)) * 1e6, 1)} for k, v in stages.items()}


# -- driver ------------------------------------------------------------------------------
def _kernel_setting(path: str) -> str | None:
    """The stripped text of a /proc or /sys file, None where there is none (not Linux, no
    such driver)."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def machine_info(threads: int) -> dict[str, Any]:
    """CPU, core count, nominal peak, library versions, and the two kernel settings that move
    the gRPC rows most (TCP congestion control, cpuidle driver; see README)."""
    import onnxruntime

    peak, cpu = cpu_peak_flops_per_core()
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "threads_per_inference": threads,
            "nominal_peak_gflops": round(peak * threads / 1e9, 1),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "load_average": os.getloadavg()[0],
            "tcp_congestion_control": _kernel_setting(
                "/proc/sys/net/ipv4/tcp_congestion_control"),
            "cpuidle_driver": _kernel_setting("/sys/devices/system/cpu/cpuidle/current_driver")}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every row the arguments allow; returns the JSON object."""
    retain_freed_memory()            # this process is the gRPC client (see dapp.malloc)
    cfg = BenchSettings(get_preset(args.preset), args.iterations, args.warmup, args.max_seconds,
                        args.threads, args.load_seconds, args.load_streams, args.ues_per_stream)
    with tempfile.TemporaryDirectory(prefix="kdran-bench-") as tmp:
        workdir = Path(tmp)
        students = {k: Path(v) for k, v in (("student_int8", args.student),
                                             ("student_fp32", args.student_fp32)) if v}
        synthetic = not students
        if synthetic:
            students = synthetic_students(cfg.preset, workdir / "synthetic")
        rows: list[Row] = []
        for name, path in students.items():
            rows += inproc_rows(name, _model_path(path), cfg)
        if args.teacher:
            rows += inproc_rows("teacher_ort", _model_path(Path(args.teacher)), cfg)
        if args.teacher_torch:
            rows += torch_rows(Path(args.teacher_torch), cfg)
        primary = "student_int8" if "student_int8" in students else "student_fp32"
        artifact = students[primary]
        if not artifact.is_dir():
            raise SystemExit(f"--{primary.replace('_', '-')} must be an artifact directory "
                             "for the gRPC rows")
        placement = split_cpus(os.sched_getaffinity(0)) if args.pin and can_pin() else None
        dapp_cpus, client_cpus = placement or (frozenset(), frozenset())   # empty: no pinning
        limit = hold_cpu_latency(args.cpu_wakeup_latency_us)  # system-wide, as the dApp's own
        freeze_startup_objects()       # this process is the gRPC client (see dapp.gc_freeze)
        try:
            with served(artifact, cfg.preset, workdir / "serve", dapp_cpus,
                        args.cpu_wakeup_latency_us) as dapp, pinned(client_cpus):
                floor = grpc_floor(dapp.tcp, dapp.uds, cfg)
                rows += grpc_rows(primary, dapp.tcp, dapp.uds, cfg)
                throughput, load_p99 = sustained_load(dapp.tcp, cfg)
        finally:
            if limit is not None:
                limit.release()
        flops = model_flops(_model_path(artifact))
        stages = stage_breakdown(_model_path(artifact), cfg) if args.breakdown else None
    machine = machine_info(cfg.threads)
    peak = machine["nominal_peak_gflops"] * 1e9
    result: dict[str, Any] = {
        "machine": machine["cpu"],
        "machine_info": machine,
        "preset": cfg.preset.name,
        "synthetic_student": synthetic,
        "rows": [asdict(r) for r in rows],
        "throughput_per_s": round(throughput, 1),
        "load_p99_us": round(load_p99, 1),
        "load_streams": cfg.load_streams,
        "student_model": primary,
        "student_flops": flops,
        "placement": (None if placement is None else
                      {"dapp_cpus": sorted(placement[0]), "client_cpus": sorted(placement[1])}),
        "grpc_floor": floor,
        "cpu_wakeup_latency_us": None if limit is None else limit.limit_us,
    }
    if stages is not None:
        result["stages"] = stages
    inproc1 = next(r for r in rows if r.model == primary and r.path == "inproc" and r.batch == 1)
    result["student_peak_fraction"] = round(flops / (inproc1.p50_us * 1e-6) / peak, 4)
    teachers = [r for r in rows if r.model.startswith("teacher") and r.batch == 1]
    if teachers:
        result["speedup_vs_teacher"] = {r.model: round(r.p50_us / inproc1.p50_us, 1)
                                        for r in teachers}
    return result


def format_table(result: dict[str, Any]) -> str:
    """Human-readable table of a ``run`` result."""
    info = result["machine_info"]
    lines = [f"machine: {result['machine']} (load average {info['load_average']:.2f}; TCP "
             f"congestion control {info['tcp_congestion_control']}, cpuidle "
             f"{info['cpuidle_driver']})",
             f"preset: {result['preset']}"]
    if result["synthetic_student"]:
        lines.append("NOTE: no trained student given: rows use a SYNTHETIC student (random "
                     f"weights, temporal MLP hidden={SYNTHETIC_HIDDEN}, {result['preset']} "
                     "shape) and its dynamic INT8 quantisation; latency only, not accuracy.")
    lines.append(f"{'model':<14} {'path':<9} {'batch':>5} {'p50 µs':>10} {'p99 µs':>10} {'n':>6}")
    for r in result["rows"]:
        lines.append(f"{r['model']:<14} {r['path']:<9} {r['batch']:>5} {r['p50_us']:>10.1f} "
                     f"{r['p99_us']:>10.1f} {r['n']:>6}")
    placement = result.get("placement")
    lines.append("gRPC rows: " + ("dApp and client share the CPUs" if placement is None else
                                  f"dApp on CPU {placement['dapp_cpus']}, client on "
                                  f"{placement['client_cpus']}"))
    floor = result["grpc_floor"]
    lines.append("gRPC floor (empty health check): " + ", ".join(
        f"{path} p50 {v['p50_us']:.1f} p99 {v['p99_us']:.1f} µs" for path, v in floor.items()))
    limit = result["cpu_wakeup_latency_us"]
    lines.append("CPU wake-up latency limit: " + ("none" if limit is None else f"{limit} µs"))
    lines.append(f"sustained: {result['throughput_per_s']:.0f} predictions/s over "
                 f"{result['load_streams']} streams, p99 {result['load_p99_us']:.0f} µs")
    lines.append(f"{result['student_model']}: {result['student_flops'] / 1e6:.2f} MFLOP/sample, "
                 f"{100 * result['student_peak_fraction']:.1f}% of nominal peak "
                 f"({result['machine_info']['nominal_peak_gflops']} GFLOP/s)")
    for model, speedup in result.get("speedup_vs_teacher", {}).items():
        lines.append(f"speed-up vs {model}: {speedup}x (p50, batch 1)")
    if "stages" in result:
        lines.append("stages of one Observe message in-process (µs):")
        for stage, v in result["stages"].items():
            lines.append(f"  {stage:<18} p50 {v['p50_us']:>9.1f}  p99 {v['p99_us']:>9.1f}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """CLI handler: run, print the table, write JSON if asked."""
    result = run(args)
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
