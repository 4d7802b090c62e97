"""CLI registration for the E2 codec: ``kdran bench e2``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``bench e2`` (``commands`` is unused: the codec has no top-level command)."""
    del commands
    parser = bench.add_parser(
        "e2", help="E2 decode throughput: RICindication + KPM per second on one core",
        description="Decode E2AP RICindication + E2SM-KPM v03.00 header and message into typed "
                    "reports in one thread, for a cell-level report (Format 1, 8 measurements) "
                    "and a 64-UE report (Format 3). Prints a table; --json writes "
                    '{"cell_reports_per_s", "ue64_reports_per_s", medians and p99 in µs, ...}.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the results as one JSON object to FILE")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="seconds timed per payload")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print a cProfile of the cell-level decode (top N functions)")
    parser.set_defaults(func=_handler)


def _table(result: dict[str, object]) -> str:
    stages = result["cell_stages_median_us"]
    assert isinstance(stages, dict)
    rows = [
        ("payload", "bytes", "indications/s", "median µs", "p99 µs"),
        ("cell (F1, 8 meas)", result["cell_bytes"], result["cell_reports_per_s"],
         result["cell_median_us"], result["cell_p99_us"]),
        ("64 UE (F3, 8 meas)", result["ue64_bytes"], result["ue64_reports_per_s"],
         result["ue64_median_us"], result["ue64_p99_us"]),
    ]
    lines = ["  ".join(f"{c!s:>18}" for c in row) for row in rows]
    lines.append("cell stages (median µs): " + ", ".join(f"{k}={v}" for k, v in stages.items()))
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
