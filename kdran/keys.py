"""CLI: ``kdran keys generate`` writes an Ed25519 key pair for signing model artifacts.

The private key signs in the distillation job (``kdran.signing.sign_artifact``); the public key
goes to every dApp (``kdran dapp serve --verify-key PATH``). Nothing heavy is imported here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_FMT = argparse.ArgumentDefaultsHelpFormatter


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``keys generate``."""
    keys = commands.add_parser("keys", help="model-signing keys (Ed25519)",
                               description="Manage the Ed25519 keys that sign model artifacts.",
                               formatter_class=_FMT)
    sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    generate = sub.add_parser(
        "generate", formatter_class=_FMT,
        help="write NAME.key (private, mode 0600) and NAME.pub (public) PEM files",
        description="Generate an Ed25519 signing key pair and print its key id. Refuses to "
                    "overwrite existing key files.")
    generate.add_argument("--out", required=True, help="directory for the two PEM files")
    generate.add_argument("--name", default="kdran-signing", help="base name of the files")
    generate.set_defaults(func=generate_handler)


def generate_handler(args: argparse.Namespace) -> int:
    """``kdran keys generate``: print the key id and the two paths."""
    from kdran.signing import SigningError, generate_key_pair

    try:
        pair = generate_key_pair(Path(args.out), args.name)
    except (SigningError, OSError) as err:
        print(f"kdran keys generate: {err}", file=sys.stderr)
        return 1
    print(pair.key_id)
    print(f"private key: {pair.private_key}", file=sys.stderr)
    print(f"public key:  {pair.public_key}", file=sys.stderr)
    return 0
