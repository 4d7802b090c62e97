"""``kdran xapp run``, ``kdran bench drift`` and ``kdran bench flood`` (registration only;
nothing heavy at import)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import Any


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def _descriptor_name(path: Path | None) -> str:
    if path is None:
        return "kdran-xapp"
    document: dict[str, Any] = json.loads(path.read_text())
    return str(document.get("name", "kdran-xapp"))


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from xapp.app import XappApp
    from xapp.config import ConfigError, config_path, load_controls
    from xapp.logs import configure_logging, decision
    from xapp.subscription import plan

    path = config_path(args.config)
    try:
        controls, unknown = load_controls(path)
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    configure_logging(controls.log_level)
    if unknown:
        decision("config_unknown_keys", keys=unknown)
    if args.mode == "local":
        controls = replace(controls, jobs=replace(controls.jobs, launcher="local"))
    if args.http_port is not None:
        controls = replace(controls, http=replace(controls.http, port=args.http_port))
    subscriptions = plan(controls)
    if args.mode == "ric":
        return _run_ric(controls, path, subscriptions)
    app = XappApp(controls, path, redis_url=args.redis).start()
    stop = threading.Event()
    _stop_on_signals(stop)
    loop = _start_local_e2(app, controls, subscriptions)
    try:
        stop.wait()
    finally:
        loop.stop()
        app.stop()
    return 0


def _start_local_e2(app: Any, controls: Any, subscriptions: Any) -> Any:
    """The in-process E2 link: an emulated E2 node (``sim.e2node``) fed by the dApps' status."""
    from sim.e2node import E2Node, E2NodeRunner
    from sim.transport import in_process_pair
    from xapp.local import LocalE2Loop
    from xapp.local_source import DappStatusSource

    ric_side, node_side = in_process_pair()
    cells = sorted({s.cell for s in subscriptions}, key=str)
    source = DappStatusSource(controls, app.controller)
    node = E2Node(node_side, cells, source, ran_function_id=controls.e2.ran_function_id)
    E2NodeRunner(node, interval_s=0.05).start()
    return LocalE2Loop(app.controller, ric_side, controls.e2.ran_function_id,
                       subscriptions).start()


def _run_ric(controls: Any, path: Path | None, subscriptions: Any) -> int:
    from xapp.app import XappApp
    from xapp.ric import RMR_PORT, RicAdapter
    from xapp.subscription import ClientEndpoint, SubmgrClient

    app = XappApp(controls, None).start()
    sub = controls.e2.subscription
    host = sub.client_host or f"service-ricxapp-{_descriptor_name(path)}-http.ricxapp"
    client = SubmgrClient(sub.submgr_url, ClientEndpoint(host, app.rest.port, RMR_PORT),
                          controls.e2.ran_function_id, app.controller.subscriptions)
    adapter = RicAdapter(app, client, subscriptions, sub.retry_interval_s)
    signal.signal(signal.SIGTERM, lambda *_: adapter.stop(sub.delete_on_shutdown))
    try:
        adapter.run()
    finally:
        app.stop()
    return 0


def _flood(args: argparse.Namespace) -> int:
    from xapp.flood import run_flood

    result = run_flood(args.cells, args.seconds, args.period_s, args.churn, args.stream_idle_s)
    r = result
    print(f"{r.cells} cells at {r.period_s:g} s: {r.indications_per_s:.0f} indications/s "
          f"sustained over {r.seconds:.1f} s (needed {r.needed_per_s:.0f}/s, headroom "
          f"{r.headroom:.2f}x, "
          f"{'keeps up' if r.keeps_up else f'falls behind {r.lag_s_per_s} s per s'})")
    print(f"latency p50 {r.p50_us:.0f} µs p99 {r.p99_us:.0f} µs; RSS {r.rss_start_mb:.0f} → "
          f"{r.rss_end_mb:.0f} MB; streams max {r.streams_max}, end {r.streams_end}, cells seen "
          f"{r.cells_seen}, evicted {r.evicted}; decode failures {r.decode_failures}")
    if args.json:
        Path(args.json).write_text(json.dumps(r.to_dict(), indent=2) + "\n")
    return 0


def _drift(args: argparse.Namespace) -> int:
    from xapp import drift_bench  # river and scipy: only when the bench runs

    return drift_bench.main(args)


def _register_drift(bench: argparse._SubParsersAction) -> None:
    """``kdran bench drift``."""
    parser = bench.add_parser(
        "drift", help="false alarms and detection delay of the xApp's drift detectors",
        description="Feed synthetic per-report NMSE streams (Gaussian noise, then a step) to the "
                    "drift detectors configured in --config (defaults without) and report "
                    "false alarms and detection delay in reports.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", help="config-file.json (else $CONFIG_FILE, else defaults)")
    parser.add_argument("--level-db", type=float, default=-12.0, help="stationary NMSE, dB")
    parser.add_argument("--sigma-db", type=float, default=0.5, help="report-to-report noise, dB")
    parser.add_argument("--step-db", type=float, default=6.0, help="the shift, dB")
    parser.add_argument("--reports", type=int, default=20_000, help="stationary run length")
    parser.add_argument("--runs", type=int, default=100, help="step experiments")
    parser.add_argument("--warmup", type=int, default=200, help="reports before each step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the result object here")
    parser.set_defaults(func=_drift)


def _register_flood(bench: argparse._SubParsersAction) -> None:
    """``kdran bench flood``."""
    parser = bench.add_parser(
        "flood", help="the xApp's KPM path under a flood of cells (rate, latency, memory)",
        description="Feed encoded E2SM-KPM RICindications of --cells cells (one per cell per "
                    "--period-s) through the xApp controller's entry point as fast as possible "
                    "for --seconds; report whether it keeps up, latency and memory.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cells", type=int, default=2000, help="cells reporting")
    parser.add_argument("--seconds", type=float, default=20.0, help="wall-clock run time")
    parser.add_argument("--period-s", type=float, default=1.0, help="report period per cell, s")
    parser.add_argument("--churn", type=float, default=0.01,
                        help="fraction of cells replaced by new cells per period")
    parser.add_argument("--stream-idle-s", type=float, default=10.0,
                        help="evict a cell's drift state after this long without a report "
                             "(simulated s)")
    parser.add_argument("--json", help="write the result object here")
    parser.set_defaults(func=_flood)


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """``kdran xapp run``; ``kdran bench drift``; ``kdran bench flood``."""
    xapp_parser = commands.add_parser(
        "xapp", help="the near-RT RIC xApp: drift detection, re-distillation jobs, rollout",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = xapp_parser.add_subparsers(dest="xapp_command", metavar="ACTION", required=True)
    run = sub.add_parser(
        "run", help="run the xApp",
        description="Run the xApp. --mode ric: ricxappframe/RMR on port 4560, E2 subscriptions "
                    "through the subscription manager, SDL from DBAAS_SERVICE_HOST, jobs as "
                    "configured. --mode local: an in-process E2 node fed by the dApps' status, "
                    "the SDL fake backend unless --redis, local subprocess jobs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("--mode", choices=("ric", "local"), default="local")
    run.add_argument("--config", help="config-file.json (else $CONFIG_FILE, else defaults)")
    run.add_argument("--redis", help="redis://host:port for the registry (local mode)")
    run.add_argument("--http-port", type=int, default=None,
                     help="HTTP port (default: controls.http.port, 8080)")
    run.set_defaults(func=_run)
    _register_drift(bench)
    _register_flood(bench)
