"""``kdran sim du``: run the emulated DU against a dApp and print a live one-line status."""

from __future__ import annotations

import argparse
import math
import sys
import threading
from typing import TYPE_CHECKING, Any

from sim.transport import DEFAULT_E2_PORT

if TYPE_CHECKING:        # the E2 node (and its ASN.1 codecs) is imported only when it runs
    from sim.du_e2 import DuE2Node, E2Stats

DEFAULT_TIMELINE = "sim/timelines/speed-shift.json"


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``kdran sim du``."""
    sim = commands.add_parser("sim", help="DU / E2-node emulator",
                              description="Emulators of the RAN side for the demo and tests.")
    sub = sim.add_subparsers(dest="sim", metavar="SIM", required=True)
    du = sub.add_parser(
        "du", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="stream live per-UE SRS channels to a dApp following a scenario timeline",
        description="Emulate a DU with N UEs whose channels follow a scenario timeline (JSON: "
                    "phases with per-group scenario, speed and carrier). Every SRS occasion "
                    "each UE's noisy SRS estimate goes to the dApp over the gRPC Observe "
                    "stream; a status line shows time, phase, predictions/s, the dApp's online "
                    "NMSE (GetStatus), fallbacks and failed RPCs. Reconnects if the dApp "
                    "restarts. With --e2 rmr the DU is also an E2 node (E2SM-KPM REPORT over "
                    "RMR): it answers RIC subscriptions for its cells and sends RICindications "
                    "with the dApp's per-cell NMSE and traffic KPMs; RMR needs librmr_si.so "
                    "and a route table (RMR_SEED_RT, see sim/rmr_transport.py).")
    du.add_argument("--dapp", default="127.0.0.1:50051",
                    help="dApp address: host:port or unix:/path")
    du.add_argument("--ues", type=int, default=16, help="number of UEs")
    du.add_argument("--cells", type=int, default=1,
                    help="cells (UEs assigned round robin; dApp UE group = cell id)")
    du.add_argument("--plmn", default=argparse.SUPPRESS,
                    help="PLMN digits (MCC+MNC) of the DU's cells (default: the DU's, 00101): "
                         "cell k of --cells is the NR CGI <PLMN>-<k as 9 hex digits>, e.g. "
                         "00101-000000001, as the xApp's e2.nodes[].cells name it")
    du.add_argument("--timeline", default=DEFAULT_TIMELINE, help="scenario timeline JSON file")
    pacing = du.add_mutually_exclusive_group()
    pacing.add_argument("--realtime", dest="realtime", action="store_true",
                        default=argparse.SUPPRESS,
                        help="one SRS occasion per SRS period of wall time (the default)")
    pacing.add_argument("--fast", dest="realtime", action="store_false",
                        default=argparse.SUPPRESS,
                        help="as fast as the dApp answers (emulated time only)")
    du.add_argument("--duration", type=float, default=None,
                    help="stop after this many emulated seconds (None: at the timeline's "
                         "end, or on Ctrl-C if it has none)")
    du.add_argument("--channel", choices=("sionna", "synthetic"), default="sionna",
                    help="channel generator: Sionna TR 38.901 or csi.synthetic multipath")
    du.add_argument("--preset", default="std", help="task preset (must match the dApp's)")
    du.add_argument("--snr-db", type=float, default=18.0, help="SRS estimation SNR, dB")
    du.add_argument("--block", type=int, default=200,
                    help="SRS occasions per generated channel block (a new UE drop each)")
    du.add_argument("--seed", type=int, default=0, help="random seed")
    du.add_argument("--interval", type=float, default=1.0,
                    help="seconds between status lines")
    du.add_argument("--e2", choices=("off", "rmr"), default="off",
                    help="act as an E2 node: off, or over RMR (needs librmr_si.so and "
                         "RMR_SEED_RT)")
    du.add_argument("--e2-port", type=int, default=DEFAULT_E2_PORT,
                    help="RMR data port the emulated E2 node listens on (--e2 rmr)")
    du.set_defaults(func=run_du)


def _status_line(du: Any, status: Any, previous: tuple[float, int],
                 e2: E2Stats | None = None) -> str:
    """One line: emulated time, phase, UEs, predictions/s (wall), NMSE, fallbacks, failures and,
    with an E2 node, its active subscriptions and indications sent."""
    s = du.status()
    wall, predictions = previous
    rate = (s.counters.predictions - predictions) / max(s.wall_s - wall, 1e-9)
    nmse = "n/a"
    if status is not None:
        groups = [g for g in status.groups if g.scored and math.isfinite(g.nmse_db)]
        if groups:
            nmse = " ".join(f"{g.nmse_db:+.1f}" for g in groups) + " dB"
    link = "up" if s.connected else "DOWN"
    return (f"t={s.t_s:8.2f}s phase {s.phase_index} '{s.phase_label}' ues={s.n_ues} "
            f"pred/s={rate:8.0f} nmse={nmse} fallbacks={s.counters.fallbacks} "
            f"failed_rpcs={s.counters.failed_rpcs} link={link}{_e2_part(e2)}")


def _e2_part(e2: E2Stats | None) -> str:
    """`` e2_subs=N indications=M`` (empty without an E2 node)."""
    return "" if e2 is None else f" e2_subs={e2.subscriptions} indications={e2.indications_sent}"


def _du_config(args: argparse.Namespace) -> Any:
    """``DuConfig`` from the arguments (ValueError / E2Error on a bad value)."""
    from dataclasses import replace

    from sim.du import DuConfig
    from xapp.e2 import NrCgi

    config = DuConfig(n_ues=args.ues, n_cells=args.cells, snr_db=args.snr_db,
                      block_occasions=args.block, realtime=getattr(args, "realtime", True),
                      duration_s=args.duration, seed=args.seed)
    plmn = getattr(args, "plmn", None)
    if plmn is None:
        return config
    NrCgi(plmn, 1)  # checks the digits here rather than when the DU names its cells
    return replace(config, plmn=plmn)


def _watch(du: Any, thread: threading.Thread, client: Any, interval_s: float,
           e2: DuE2Node | None) -> None:
    """Print the status line every ``interval_s`` until the DU thread ends."""
    previous = (0.0, 0)
    while thread.is_alive():
        thread.join(interval_s)
        try:
            status = client.status()
        except Exception:  # the dApp may be restarting; the DU line says so
            status = None
        line = _status_line(du, status, previous, None if e2 is None else e2.stats())
        snap = du.status()
        previous = (snap.wall_s, snap.counters.predictions)
        print("\r" + line, end="", flush=True)


def run_du(args: argparse.Namespace) -> int:
    """Handler of ``kdran sim du``."""
    from csi.presets import PRESETS
    from dapp.client import DappClient
    from dapp.malloc import retain_freed_memory
    from sim.du import Du, channel_source
    from sim.du_e2 import E2Unavailable, open_rmr_transport, start_du_e2_node
    from sim.timeline import TimelineError, load_timeline
    from xapp.e2 import E2Error

    try:
        preset = PRESETS[args.preset]
    except KeyError:
        print(f"unknown preset {args.preset!r}; known: {sorted(PRESETS)}", file=sys.stderr)
        return 2
    retain_freed_memory()
    try:
        timeline = load_timeline(args.timeline)
        config = _du_config(args)
    except (TimelineError, ValueError, E2Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    transport = None
    if args.e2 == "rmr":
        try:  # before the channel source: fail fast, without loading Sionna
            transport = open_rmr_transport(args.e2_port)
        except E2Unavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    e2: DuE2Node | None = None
    try:
        du = Du(args.dapp, preset, timeline, channel_source(args.channel, preset), config)
        if du.end_s is None:
            print("running until Ctrl-C (no --duration and the timeline has no end)",
                  file=sys.stderr)
        with DappClient(args.dapp, timeout_s=2.0) as client:
            if transport is not None:
                e2 = start_du_e2_node(du, client, transport)
                print(f"E2 node on RMR port {args.e2_port}, KPM RAN function "
                      f"{e2.node.ran_function_id}, cells "
                      f"{' '.join(str(c) for c in du.cells)}", file=sys.stderr)
            thread = threading.Thread(target=du.run, name="du", daemon=True)
            thread.start()
            try:
                _watch(du, thread, client, args.interval, e2)
            except KeyboardInterrupt:
                du.stop()
            print()
    finally:
        if e2 is not None:
            e2.stop()
        elif transport is not None:
            transport.close()
    final = du.status().counters
    print(f"sent={final.sent} predictions={final.predictions} ready={final.ready} "
          f"fallbacks={final.fallbacks} failed_rpcs={final.failed_rpcs} "
          f"reconnects={final.reconnects} skipped={final.skipped}"
          f"{_e2_part(None if e2 is None else e2.stats())}")
    return 0
