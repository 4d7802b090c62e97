"""``kdran xapp run`` and ``kdran bench drift`` (registration only; nothing heavy at import)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import Any

from xapp import drift_bench


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


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """``kdran xapp run``; ``kdran bench drift``."""
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
    drift_bench.register(commands, bench)
