"""Model artifacts: a directory with ``model.onnx``, ``card.json`` and ``SHA256SUMS``.

The ONNX file follows ``csi.model_io`` (input ``history`` float32 ``[b, history, antenna, rb, 2]``,
outputs ``future`` and ``beam_logits``) and carries ``csi.model_io.MODEL_METADATA_KEYS`` in its
metadata_props; ``TaskSpec.check`` compares them with the task the dApp serves.
``SHA256SUMS`` uses the ``sha256sum`` format (``<hex>  <file name>`` per line). A signed artifact
also holds ``SIGNATURE`` (``kdran.signing``), which covers model.onnx and the exact bytes of
card.json, so the card is always stored verbatim.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi.model_io import MODEL_METADATA_KEYS
from csi.presets import Preset
from dapp.errors import InvalidInput, PreconditionFailed
from kdran.signing import SIGNATURE_FILE

MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
SUMS_FILE = "SHA256SUMS"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_GEOMETRY_KEYS = ("history", "horizon", "n_ant", "n_rb", "n_beams")


def check_version(version: str) -> str:
    """Return ``version`` if it is a safe identifier (``[A-Za-z0-9._-]``, 1..64 chars)."""
    if not VERSION_PATTERN.match(version) or version in (".", ".."):
        raise InvalidInput(f"model version {version!r} must match {VERSION_PATTERN.pattern}")
    return version


@dataclass(frozen=True)
class TaskSpec:
    """The geometry a served model must have (from a ``csi.presets.Preset``)."""

    preset: str
    history: int
    horizon: int
    n_ant: int
    n_rb: int
    n_beams: int

    @classmethod
    def from_preset(cls, preset: Preset) -> TaskSpec:
        """The task of ``preset``."""
        return cls(preset.name, preset.history, preset.horizon, preset.n_ant, preset.n_rb,
                   preset.n_beams)

    def check(self, metadata: Mapping[str, str]) -> None:
        """Raise ``PreconditionFailed`` naming every metadata key that does not fit this task.

        Geometry keys must be equal; the preset name may differ (``demo`` and ``std`` share a
        geometry) as long as the geometry matches.
        """
        missing = [k for k in MODEL_METADATA_KEYS if k not in metadata]
        if missing:
            raise PreconditionFailed(f"model metadata lacks keys {missing}")
        wrong = []
        for key in _GEOMETRY_KEYS:
            want = getattr(self, key)
            try:
                got = int(metadata[key])
            except ValueError:
                raise PreconditionFailed(
                    f"model metadata {key}={metadata[key]!r} is not an integer") from None
            if got != want:
                wrong.append(f"{key}={got} (task {self.preset!r} needs {want})")
        if wrong:
            raise PreconditionFailed("model does not fit the served task: " + ", ".join(wrong))


def sha256_bytes(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """Lower-case hex SHA-256 of the file at ``path`` (streamed in ``block``-byte reads)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def parse_sums(text: str) -> dict[str, str]:
    """``sha256sum`` output -> ``{file name: hex digest}``."""
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, _, name = line.strip().partition(" ")
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


@dataclass(frozen=True)
class ModelArtifact:
    """An artifact directory on disk; ``sha256`` is the digest of ``model.onnx``."""

    directory: Path
    sha256: str
    card: dict[str, Any]

    @property
    def model_path(self) -> Path:
        """Path of the ONNX file."""
        return self.directory / MODEL_FILE


def load_artifact(directory: Path) -> ModelArtifact:
    """Open an artifact directory, verifying ``SHA256SUMS`` where present.

    Raises ``PreconditionFailed`` if ``model.onnx`` is missing or a listed digest differs, and
    ``InvalidInput`` if ``card.json`` is not a JSON object.
    """
    model = directory / MODEL_FILE
    if not model.is_file():
        raise PreconditionFailed(f"{directory} has no {MODEL_FILE}")
    digest = sha256_file(model)
    sums_path = directory / SUMS_FILE
    if sums_path.is_file():
        for name, want in parse_sums(sums_path.read_text()).items():
            got = digest if name == MODEL_FILE else sha256_file(directory / name)
            if got != want:
                raise PreconditionFailed(f"{directory / name}: sha256 {got} != {SUMS_FILE} {want}")
    return ModelArtifact(directory, digest, read_card(directory))


def read_card(directory: Path) -> dict[str, Any]:
    """The model card of ``directory`` (``{}`` when there is none)."""
    path = directory / CARD_FILE
    if not path.is_file():
        return {}
    return parse_card(path.read_text())


def parse_card(text: str) -> dict[str, Any]:
    """Model card JSON -> dict (``{}`` for empty text); ``InvalidInput`` if not a JSON object."""
    if not text.strip():
        return {}
    try:
        card = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInput(f"card.json is not valid JSON: {err}") from None
    if not isinstance(card, dict):
        raise InvalidInput("card.json must hold a JSON object")
    return card


def card_text(card: Mapping[str, Any]) -> str:
    """The card.json text written for ``card`` (sorted keys, 2-space indent, final newline)."""
    return json.dumps(dict(card), indent=2, sort_keys=True) + "\n"


def write_artifact(directory: Path, model_path: Path, card: Mapping[str, Any]) -> ModelArtifact:
    """Complete ``directory`` (which already holds ``model_path``) with card and ``SHA256SUMS``."""
    return write_artifact_files(directory, model_path, card_text(card))


def write_artifact_files(directory: Path, model_path: Path, card: str,
                         signature: str = "") -> ModelArtifact:
    """Complete ``directory`` with the card text ``card`` (verbatim), ``SHA256SUMS`` and, when
    given, the ``SIGNATURE`` file text ``signature``.

    ``model_path`` is renamed to ``directory/model.onnx`` if it has another name. Files are
    fsynced, so a crash leaves either no artifact or a whole one once the directory is renamed.
    """
    target = directory / MODEL_FILE
    if model_path != target:
        os.replace(model_path, target)
    _write_synced(directory / CARD_FILE, card.encode())
    sums = {MODEL_FILE: sha256_file(target), CARD_FILE: sha256_bytes(card.encode())}
    _write_synced(directory / SUMS_FILE,
                  "".join(f"{d}  {n}\n" for n, d in sorted(sums.items())).encode())
    if signature:
        _write_synced(directory / SIGNATURE_FILE, signature.encode())
    return ModelArtifact(directory, sums[MODEL_FILE], parse_card(card))


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
