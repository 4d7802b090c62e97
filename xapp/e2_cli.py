"""CLI registration for the E2 codec: ``kdran bench e2``.

Outside the ``xapp.e2`` package on purpose: importing anything in it loads the ASN.1 codecs
(pycrate, asn1tools; 0.2 s of ``kdran --help`` on the 2026-12-05 CI machine)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``bench e2`` (``commands`` is unused: the codec has no top-level command)."""
    del commands
    parser = bench.add_parser(
        "e2", help="E2 decode throughput: RICindication + KPM per second on one core",
        description="Decode E2AP RICindication + E2SM-KPM v03.00 header and message into typed "
                    "reports in one thread, for a cell-level report (Format 1, 8 measurements) "
                    "and a 64-UE report (Format 3), on the fast path (fast readers, library "
                    "fallback) and the library path (pycrate + asn1tools). Prints a table and "
                    "what bounds the fast path; --json writes "
                    '{"cell_reports_per_s", "ue64_reports_per_s", medians and p99 in µs, ...} '
                    'for the path the xApp uses ("decode_path"), both paths under "paths".',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the results as one JSON object to FILE")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="seconds timed per payload")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print a cProfile of the xApp path's cell-level decode (top N "
                             "functions)")
    parser.set_defaults(func=_handler)


def _table(result: dict[str, Any]) -> str:
    paths, xapp_path = result["paths"], result["decode_path"]
    rows: list[tuple[object, ...]] = [
        ("payload", "path", "bytes", "indications/s", "median µs", "p99 µs")]
    for payload, label in (("cell", "cell (F1, 8 meas)"), ("ue64", "64 UE (F3, 8 meas)")):
        for name, path in paths.items():
            rows.append((label, name + ("*" if name == xapp_path else ""),
                         result[f"{payload}_bytes"], path[f"{payload}_reports_per_s"],
                         path[f"{payload}_median_us"], path[f"{payload}_p99_us"]))
    lines = ["  ".join(f"{c!s:>18}" for c in row) for row in rows]
    lines.append("* the path the xApp uses (KDRAN_E2_DECODER=library forces the library path); "
                 f"fast speedup: {result['fast_speedup']}")
    for name, path in paths.items():
        stages = ", ".join(f"{k}={v}" for k, v in path["cell_stages_median_us"].items())
        lines.append(f"cell stages, {name} (median µs): {stages}")
    lines.append("fast path, first indication of a subscription (information list not cached): "
                 f"median {paths['fast']['cell_cold_median_us']} µs")
    profile = result["fast_profile"]
    lines.append("fast path own time by file (cProfile): " + ", ".join(
        f"{k} {v:.0%}" for k, v in profile["by_file"].items()))
    lines.append("fast path top functions: " + ", ".join(
        f"{t['function']} {t['share']:.0%}" for t in profile["top"][:5]))
    lines.append(f"KPM ASN.1 compile: {result['kpm_compile_s']} s   machine: {result['machine']}")
    return "\n".join(lines)


def _handler(args: argparse.Namespace) -> int:
    from xapp.e2 import bench

    if args.seconds <= 0:
        print("--seconds must be positive")
        return 2
    result = bench.run(args.seconds)
    print(_table(result))
    if args.profile > 0:
        print(bench.profile_cell(top=args.profile))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
