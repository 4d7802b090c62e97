"""CLI: ``kdran dapp serve``, ``kdran bench latency`` and ``kdran bench load``.

Imports nothing heavy at module level (no ONNX Runtime, gRPC or torch): handlers import what they
need. Every ``serve`` flag also reads an environment variable ``KDRAN_DAPP_<FLAG>`` (flag name in
upper case, dashes as underscores), which is how the Helm chart configures the dApp; a flag on
the command line wins over the variable. ``--verify-key`` may be repeated (key rotation); its
variable is ``KDRAN_DAPP_VERIFY_KEYS``, paths separated by commas.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

ENV_PREFIX = "KDRAN_DAPP_"
_FMT = argparse.ArgumentDefaultsHelpFormatter


def _env(flag: str, default: Any, kind: Callable[[str], Any] = str) -> Any:
    """Default of ``--flag``: ``$KDRAN_DAPP_FLAG`` converted with ``kind``, else ``default``."""
    raw = os.environ.get(ENV_PREFIX + flag.upper().replace("-", "_"))
    return default if raw is None or raw == "" else kind(raw)


def _add(parser: argparse.ArgumentParser, flag: str, default: Any, help_: str,
         kind: Callable[[str], Any] = str) -> None:
    env = ENV_PREFIX + flag.upper().replace("-", "_")
    parser.add_argument(f"--{flag}", type=kind, default=_env(flag, default, kind),
                        help=f"{help_} (env {env})")


def _latency_limit_us(text: str) -> int:
    """``--cpu-wakeup-latency-us``: -1 (none) or a PM QoS limit in 0..2**31-1 µs."""
    from dapp.cpu_latency import MAX_LIMIT_US

    value = int(text)
    if not -1 <= value <= MAX_LIMIT_US:
        raise argparse.ArgumentTypeError(f"{value} is not -1 (none) or 0..{MAX_LIMIT_US} µs")
    return value


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``dapp serve``, ``bench latency`` and ``bench load``."""
    dapp = commands.add_parser("dapp", help="the dApp: ONNX channel predictor next to the DU",
                               description="The dApp serves the distilled student over gRPC.",
                               formatter_class=_FMT)
    sub = dapp.add_subparsers(dest="dapp_command", metavar="COMMAND", required=True)
    serve = sub.add_parser(
        "serve", formatter_class=_FMT,
        help="serve ChannelPredictor + ModelManager (+ health, reflection) over gRPC",
        description="Serve the channel predictor. On start it loads the last known good model "
                    "from --state-dir; --model seeds the store when it has none.")
    _add(serve, "model", "", "artifact directory (model.onnx + card.json) served when the "
                             "state dir has no last known good model")
    _add(serve, "listen", "0.0.0.0:50051", "TCP address host:port ('' = none)")
    _add(serve, "uds", "", "also listen on this Unix socket path ('' = none)")
    _add(serve, "metrics-port", 9100, "Prometheus /metrics port (0 = off)", int)
    _add(serve, "state-dir", "./dapp-state", "model store and state.json (last known good)")
    _add(serve, "preset", "std", "task preset served (csi.presets)")
    _add(serve, "deadline-us", 0.0, "answer with the AR fallback when the model would finish "
                                    "later than this after receipt (0 = only the call deadline)",
         float)
    _add(serve, "intra-threads", 1, "ONNX Runtime intra-op threads per inference", int)
    _add(serve, "cpus", "", "pin the dApp to these CPUs, e.g. '3' or '2-3' (Linux; '' = no "
                            "pinning): keep it off the DU's cores")
    _add(serve, "cpu-wakeup-latency-us", -1,
         "hold this PM QoS CPU wake-up latency limit while serving (0 = idle CPUs poll; needs "
         "write access to /dev/cpu_dma_latency; -1 = none): see dapp.cpu_latency",
         _latency_limit_us)
    _add(serve, "workers", 32, "gRPC worker threads: concurrent calls (an open Observe stream "
                                 "holds one)", int)
    _add(serve, "max-ues", 512, "tracked UEs at most; a new UE beyond it is refused with "
                                "RESOURCE_EXHAUSTED (idle UEs are evicted)", int)
    _add(serve, "idle-timeout-s", 60.0, "evict a UE not seen for this long", float)
    _add(serve, "history-capacity", 0, "SRS steps kept per UE (0 = 2 x (history + horizon))",
         int)
    _add(serve, "top-k", 3, "beams returned per prediction", int)
    _add(serve, "log-level", "INFO", "logging level")
    _add_security_flags(serve)
    serve.set_defaults(func=serve_handler)

    latency = bench.add_parser(
        "latency", formatter_class=_FMT,
        help="latency of the student (and teacher) in-process, over gRPC TCP/UDS and stream",
        description="Measures p50/p99 latency in-process (batch 1 and 16), over gRPC (TCP, "
                    "Unix socket, Observe stream), the gRPC floor (an empty health check to the "
                    "same dApp) and sustained throughput. Without --student/"
                    "--student-fp32 a synthetic student of std shape is built and labelled.")
    latency.add_argument("--json", default="", help="write the result object here")
    latency.add_argument("--student", default="", help="INT8 student artifact directory")
    latency.add_argument("--student-fp32", default="", help="fp32 student artifact directory")
    latency.add_argument("--teacher", default="",
                         help="teacher ONNX file or artifact directory (teacher_ort row)")
    latency.add_argument("--teacher-torch", default="",
                         help="teacher torch.export program (.pt2; teacher_torch row; the only "
                              "place torch is loaded)")
    latency.add_argument("--preset", default="std", help="task preset")
    latency.add_argument("--iterations", type=int, default=2000, help="timed calls per row")
    latency.add_argument("--warmup", type=int, default=50, help="untimed calls per row")
    latency.add_argument("--max-seconds", type=float, default=15.0,
                         help="stop a row after this long even if iterations remain")
    latency.add_argument("--threads", type=int, default=1, help="intra-op threads in-process")
    latency.add_argument("--load-seconds", type=float, default=5.0,
                         help="duration of the sustained-load measurement")
    latency.add_argument("--load-streams", type=int, default=4,
                         help="concurrent Observe streams in the sustained-load measurement")
    latency.add_argument("--ues-per-stream", type=int, default=8, help="UEs per load stream")
    latency.add_argument("--no-pin", dest="pin", action="store_false",
                         help="let the dApp and the bench client share every CPU instead of "
                              "the dApp on the last CPU and the client on the others "
                              "(pinning on: %(default)s)")
    latency.add_argument("--cpu-wakeup-latency-us", type=_latency_limit_us, default=-1,
                         help="run the gRPC rows under this PM QoS CPU wake-up latency limit "
                              "(µs; the dApp asks for it too; needs write access to "
                              "/dev/cpu_dma_latency; -1 = none)")
    latency.add_argument("--breakdown", action="store_true",
                         help="also time each stage of one Observe message in-process")
    latency.set_defaults(func=bench_handler)

    load = bench.add_parser(
        "load", formatter_class=_FMT,
        help="N DU streams x M UEs against one dApp, with a shadow deploy and a hot swap",
        description="Closed-loop Observe streams against a `kdran dapp serve` subprocess on "
                    "localhost (synthetic student) for a fixed time, while a shadow candidate "
                    "is deployed (25%%), promoted (50%%) and the next one deployed (75%%). "
                    "Reports predictions/s, p50/p99 round trip (µs), errors (goal 0) and the "
                    "dApp's RSS growth (MiB, goal flat); exit code 1 if any RPC failed.")
    load.add_argument("--json", default="", help="write the result object here")
    load.add_argument("--streams", type=int, default=4, help="concurrent DU streams")
    load.add_argument("--ues", type=int, default=16, help="UEs per stream")
    load.add_argument("--seconds", type=float, default=30.0, help="timed duration")
    load.add_argument("--preset", default="std", help="task preset")
    load.set_defaults(func=load_handler)


def _add_security_flags(serve: argparse.ArgumentParser) -> None:
    """TLS, model-signature and per-client limit flags of ``dapp serve``."""
    from dapp.limits import (
        DEFAULT_EXPORT_BYTES,
        DEFAULT_EXPORT_SEQUENCES,
        DEFAULT_STREAM_BURST,
        DEFAULT_STREAM_RATE,
    )

    _add(serve, "tls-cert", "", "PEM server certificate chain: serve gRPC over TLS ('' = "
                                "plaintext)")
    _add(serve, "tls-key", "", "PEM private key of --tls-cert")
    _add(serve, "tls-client-ca", "", "PEM CA: require client certificates signed by it "
                                     "(mutual TLS; '' = no client certificates)")
    serve.add_argument("--verify-key", action="append", default=None, metavar="PATH",
                       help="PEM Ed25519 public key; when given (repeatable: any of them), "
                            "models must be signed by one (env KDRAN_DAPP_VERIFY_KEYS, "
                            "comma-separated; default: no verification)")
    _add(serve, "stream-rate", DEFAULT_STREAM_RATE,
         "observations/s per Observe stream (token bucket; 0 = no limit)", float)
    _add(serve, "stream-burst", DEFAULT_STREAM_BURST, "token bucket size of --stream-rate", int)
    _add(serve, "unary-rate", DEFAULT_STREAM_RATE,
         "observations/s per client over Predict + PredictBatch (token bucket; 0 = no limit)",
         float)
    _add(serve, "unary-burst", DEFAULT_STREAM_BURST, "token bucket size of --unary-rate", int)
    _add(serve, "export-limit", DEFAULT_EXPORT_SEQUENCES,
         "sequences per ExportRecentCsi call at most", int)
    _add(serve, "export-max-mb", DEFAULT_EXPORT_BYTES / 2**20,
         "payload MiB per ExportRecentCsi call at most", float)


def _verify_keys(args: argparse.Namespace) -> tuple[Path, ...]:
    """``--verify-key`` paths, else those of ``$KDRAN_DAPP_VERIFY_KEYS``."""
    paths = args.verify_key or os.environ.get(ENV_PREFIX + "VERIFY_KEYS", "").split(",")
    return tuple(Path(p.strip()) for p in paths if p.strip())


def _server_tls(args: argparse.Namespace) -> Any:
    """``dapp.tls.ServerTls`` from the flags, or None (plaintext)."""
    from dapp.tls import ServerTls

    if not (args.tls_cert or args.tls_key or args.tls_client_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    return ServerTls(Path(args.tls_cert), Path(args.tls_key),
                     Path(args.tls_client_ca) if args.tls_client_ca else None)


def serve_handler(args: argparse.Namespace) -> int:
    """Run the dApp until SIGTERM/SIGINT."""
    from csi.presets import get_preset
    from dapp.affinity import parse_cpu_list, pin_process
    from dapp.cpu_latency import hold_cpu_latency
    from dapp.engine import EngineConfig
    from dapp.gc_freeze import freeze_startup_objects
    from dapp.limits import ServiceLimits
    from dapp.manager import RunnerOptions
    from dapp.server import ServerConfig, build_dapp
    from kdran.signing import SigningError

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.cpus:                       # before gRPC and ONNX Runtime start their threads
            pin_process(parse_cpu_list(args.cpus))
        latency_limit = hold_cpu_latency(args.cpu_wakeup_latency_us)
        limits = ServiceLimits(args.stream_rate, args.stream_burst, args.export_limit,
                               int(args.export_max_mb * 2**20), args.unary_rate,
                               args.unary_burst)
        dapp = build_dapp(
            get_preset(args.preset), Path(args.state_dir),
            Path(args.model) if args.model else None,
            EngineConfig(top_k=args.top_k, deadline_us=args.deadline_us,
                         history_capacity=args.history_capacity, max_ues=args.max_ues,
                         idle_timeout_s=args.idle_timeout_s),
            RunnerOptions(intra_threads=args.intra_threads),
            ServerConfig(listen=args.listen, uds=args.uds, max_workers=args.workers,
                         limits=limits, tls=_server_tls(args), verify_keys=_verify_keys(args)))
    except (ValueError, SigningError) as err:
        logging.getLogger(__name__).error("cannot start the dApp: %s", err)
        return 2
    if latency_limit is not None:
        dapp.metrics.cpu_latency_limit.set(latency_limit.limit_us)
    if args.metrics_port:
        dapp.metrics.serve_http(args.metrics_port)
    frozen = freeze_startup_objects()           # short full collections while serving
    logging.getLogger(__name__).debug("%d start-up objects exempt from garbage collection",
                                      frozen)
    dapp.start()
    stopped = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        stopped.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    stopped.wait()
    dapp.stop(grace_s=2.0)
    if latency_limit is not None:
        latency_limit.release()
    return 0


def bench_handler(args: argparse.Namespace) -> int:
    """``kdran bench latency``."""
    from dapp import bench

    return bench.main(args)


def load_handler(args: argparse.Namespace) -> int:
    """``kdran bench load``."""
    from dapp import load

    return load.main(args)
