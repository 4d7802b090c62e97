"""The ``kdran`` console script: one command, a subcommand per job.

Each component contributes its subcommands through a module with
``register(commands, bench) -> None``: ``commands`` is the top-level subparsers action and
``bench`` the one under ``kdran bench``. Registration modules import nothing heavy (no torch, no
ONNX Runtime) at import time, so ``kdran --help`` is instant and the dApp/xApp images, which lack
torch, can still build the whole parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kdran import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "distill.data.cli",
    "distill.cli",
    "distill.bench_accuracy",
    "dapp.cli",
    "kdran.keys",
    "xapp.e2_cli",
    "xapp.cli",
    "sim.cli",
    "kdran.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser: every registered component's subcommands."""
    parser = argparse.ArgumentParser(
        prog="kdran",
        description="Knowledge-distilled channel prediction for the Open RAN.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kdran {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench_parser = commands.add_parser(
        "bench", help="benchmarks: print a table and, with --json FILE, write JSON",
        description="Benchmarks print a table and, with --json FILE, write one JSON object "
                    "(stable keys, DESIGN.md section 8).")
    bench = bench_parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; its return value is the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
