"""The published artifact: a directory with the model, its card and checksums.

Layout::

    model.onnx    the INT8 student (csi.model_io contract, metadata_props set)
    card.json     the model card (see ``distill.pipeline.build_card``)
    SHA256SUMS    ``<sha256>  <file>`` lines for model.onnx and card.json (sha256sum format)
    SIGNATURE     Ed25519 signature over model.onnx + card.json (``kdran.signing``), when the
                  publisher was given a signing key; the dApp refuses unsigned models when it is
                  configured with verify keys

The directory is assembled in a temporary sibling and renamed into place, so a reader never sees
a half-written artifact. ``verify_artifact`` recomputes the checksums.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from kdran.signing import sign_artifact

MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
SUMS_FILE = "SHA256SUMS"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish_artifact(directory: Path, model_path: Path, card: dict[str, Any],
                     signing_key: Path | None = None) -> Path:
    """Write the artifact to ``directory`` (replacing one there) and return it.

    With ``signing_key`` (an Ed25519 private key PEM, see ``kdran keys generate``) the files are
    signed before the directory becomes visible, so no unsigned artifact is ever published.
    """
    if not model_path.is_file():
        raise FileNotFoundError(f"model to publish not found: {model_path}")
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(model_path, tmp / MODEL_FILE)
    (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    lines = [f"{sha256_file(tmp / name)}  {name}\n" for name in (MODEL_FILE, CARD_FILE)]
    (tmp / SUMS_FILE).write_text("".join(lines))
    if signing_key is not None:
        sign_artifact(tmp, signing_key)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory


def verify_artifact(directory: Path) -> dict[str, Any]:
    """Check every checksum in ``SHA256SUMS``; return the card. ``ValueError`` names a mismatch."""
    sums = directory / SUMS_FILE
    if not sums.is_file():
        raise FileNotFoundError(f"no {SUMS_FILE} in {directory}")
    for line in sums.read_text().splitlines():
        expected, name = line.split(maxsplit=1)
        if sha256_file(directory / name) != expected:
            raise ValueError(f"checksum mismatch for {directory / name}")
    card: dict[str, Any] = json.loads((directory / CARD_FILE).read_text())
    return card
