"""``kdran data generate`` and ``kdran data info``: build and list the cached Sionna datasets.

Imports nothing heavy at module level (Sionna and torch load when a set is generated).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from csi.presets import PRESETS, get_preset
from distill.data.cache import DEFAULT_ROOT, find_cached, list_cached, load_or_generate
from distill.data.recipes import ALL_SPLITS, RICIAN_SPLIT, SPLITS

_FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``kdran data {generate,info}``; ``bench`` is unused."""
    del bench
    data = commands.add_parser(
        "data", help="generate and list the Sionna channel datasets",
        description="Channel datasets from Sionna (TR 38.901 UMa/UMi NLoS, CDL-A..E, Rician), "
                    "cached under ROOT/<preset>/<split>/.", formatter_class=_FORMATTER)
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    gen = actions.add_parser(
        "generate", help="generate (or reuse) the cached sets of a preset",
        description="Generate one split (or all default splits) of a preset with Sionna and cache "
                    "it; a cached set is reused while its recipe matches. Prints one line per "
                    "split: shape, content hash, seconds.", formatter_class=_FORMATTER)
    gen.add_argument("--preset", required=True, choices=sorted(PRESETS),
                     default=argparse.SUPPRESS, help="task preset")
    gen.add_argument("--split", required=True, choices=[*ALL_SPLITS, "all"],
                     default=argparse.SUPPRESS,
                     help=f"split to generate; 'all' = {', '.join(SPLITS)}")
    gen.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                     help="dataset cache directory (env KDRAN_DATA)")
    gen.add_argument("--n", type=int, default=None,
                     help="sequences per split (None: the preset's size for the split)")
    gen.add_argument("--k-factor-db", type=float, default=None,
                     help="Rician K-factor in dB, rician split only (None: 10 dB)")
    gen.add_argument("--force", action="store_true", help="regenerate even if cached")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)

    info = actions.add_parser(
        "info", help="list the cached sets",
        description="Table of cached sets: preset, split, n, shape, scenarios, speed range, "
                    "content hash prefix, size on disk.", formatter_class=_FORMATTER)
    info.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                      help="dataset cache directory (env KDRAN_DATA)")
    info.set_defaults(func=_info)


def _generate(args: argparse.Namespace) -> int:
    try:
        if args.k_factor_db is not None and args.split != RICIAN_SPLIT:
            raise ValueError(f"--k-factor-db only applies to --split {RICIAN_SPLIT}")
        preset = get_preset(args.preset)
        for split in SPLITS if args.split == "all" else (args.split,):
            start = time.perf_counter()
            channel_set = None if args.force else find_cached(
                preset, split, args.root, n=args.n, k_factor_db=args.k_factor_db)
            source = "cached"
            if channel_set is None:
                source = "generated"
                channel_set = load_or_generate(preset, split, args.root, n=args.n,
                                               progress=not args.quiet, force=True,
                                               k_factor_db=args.k_factor_db)
            seconds = time.perf_counter() - start
            print(f"{preset.name}/{split}: shape {list(channel_set.h.shape)} "
                  f"hash {channel_set.meta['content_hash']} {seconds:.1f} s ({source})",
                  flush=True)
    except ValueError as err:
        print(f"kdran data generate: {err}", file=sys.stderr)
        return 2
    return 0


def _size(n_bytes: int) -> str:
    """Human-readable size in decimal units."""
    size = float(n_bytes)
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _info(args: argparse.Namespace) -> int:
    infos = list_cached(args.root)
    if not infos:
        print(f"no cached sets under {args.root}")
        return 0
    header = ("preset", "split", "n", "shape", "scenarios", "speed km/h", "hash", "size")
    rows = [(i.preset, i.split, str(i.n), "x".join(map(str, i.shape)), ",".join(i.scenarios),
             f"{i.speed_kmh[0]:.0f}-{i.speed_kmh[1]:.0f}", i.content_hash[:12],
             _size(i.size_bytes)) for i in infos]
    widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]
    for row in (header, *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0
