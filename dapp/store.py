"""On-disk model store: installed artifacts plus a small state file naming their roles.

Layout under the state directory::

    models/<version>/{model.onnx, card.json, SHA256SUMS[, SIGNATURE]}   installed artifacts
    incoming/<random>/model.onnx                           uploads in progress
    state.json   {"active": v | null, "shadow": v | null, "previous": [v, ...]}

``active`` is only written after the model loaded and went into service, so it is the last known
good model and the one loaded on restart; ``previous`` is the rollback stack (newest last).
Writes are atomic: a model directory appears by ``rename`` once complete, and ``state.json`` is
replaced with ``os.replace`` after an fsync.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from dapp.artifact import (
    CARD_FILE,
    ModelArtifact,
    check_version,
    load_artifact,
    write_artifact_files,
)
from kdran.signing import SIGNATURE_FILE

STATE_FILE = "state.json"
MAX_PREVIOUS = 3


@dataclass
class StoreState:
    """Roles of the installed versions."""

    active: str | None = None
    shadow: str | None = None
    previous: list[str] = field(default_factory=list)

    def keep(self) -> set[str]:
        """Versions whose artifacts must stay on disk."""
        return {v for v in (self.active, self.shadow, *self.previous) if v}


@dataclass
class Upload:
    """A model file being received: the open file, bytes so far and their running SHA-256."""

    directory: Path
    path: Path
    file: BinaryIO
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the file and the digest."""
        self.file.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        """Flush, fsync and close the file."""
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()

    def hexdigest(self) -> str:
        """SHA-256 of everything written, lower-case hex."""
        return str(self.digest.hexdigest())


class ModelStore:
    """Artifacts and role state under ``state_dir`` (created if missing)."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir)
        self.models = self.root / "models"
        self.incoming = self.root / "incoming"
        self.models.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.incoming, ignore_errors=True)     # leftovers of a crash
        self.incoming.mkdir(parents=True)

    # -- state ----------------------------------------------------------------------------
    def read_state(self) -> StoreState:
        """The persisted roles (empty state if there is no file yet)."""
        path = self.root / STATE_FILE
        if not path.is_file():
            return StoreState()
        raw = json.loads(path.read_text())
        return StoreState(raw.get("active"), raw.get("shadow"), list(raw.get("previous", [])))

    def write_state(self, state: StoreState) -> None:
        """Persist ``state`` atomically and delete artifacts no role refers to."""
        state.previous = state.previous[-MAX_PREVIOUS:]
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".state-")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(state), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / STATE_FILE)
        for directory in self.models.iterdir():
            if directory.name not in state.keep():
                shutil.rmtree(directory, ignore_errors=True)

    # -- artifacts ------------------------------------------------------------------------
    def path(self, version: str) -> Path:
        """Directory of an installed ``version``."""
        return self.models / check_version(version)

    def installed(self, version: str) -> ModelArtifact | None:
        """The installed artifact of ``version`` (digests verified), or None."""
        directory = self.path(version)
        return load_artifact(directory) if directory.is_dir() else None

    def begin_upload(self) -> Upload:
        """A fresh staging file for a model being received."""
        directory = Path(tempfile.mkdtemp(dir=self.incoming))
        path = directory / "model.onnx"
        return Upload(directory, path, path.open("wb"))

    def discard(self, upload: Upload) -> None:
        """Close and delete a staging directory."""
        upload.file.close()
        shutil.rmtree(upload.directory, ignore_errors=True)

    def commit(self, upload: Upload, version: str, card: str,
               signature: str = "") -> ModelArtifact:
        """Complete the staged artifact (card text verbatim, ``SIGNATURE`` file text when
        signed) and move it to ``models/<version>`` in one rename."""
        upload.finish()
        artifact = write_artifact_files(upload.directory, upload.path, card, signature)
        target = self.path(version)
        os.rename(upload.directory, target)
        return ModelArtifact(target, artifact.sha256, artifact.card)

    def install_copy(self, source: ModelArtifact, version: str) -> ModelArtifact:
        """Copy an artifact directory (e.g. ``--model DIR``) into the store as ``version``,
        with its card and signature unchanged."""
        upload = self.begin_upload()
        try:
            with source.model_path.open("rb") as f:
                shutil.copyfileobj(f, upload.file)
            return self.commit(upload, version, _text_or_empty(source.directory / CARD_FILE),
                               _text_or_empty(source.directory / SIGNATURE_FILE))
        finally:
            self.discard(upload)


def _text_or_empty(path: Path) -> str:
    return path.read_bytes().decode() if path.is_file() else ""
