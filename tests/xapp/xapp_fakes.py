"""Test doubles for the xApp tests: an in-memory dApp control plane (the real dApp needs an ONNX
model from a distillation job) that follows the proto's role semantics and scores models with
NMSE values the test sets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from csi.presets import get_preset


@dataclass
class Stats:
    version: str
    role: str
    scored: int
    nmse_db: float
    nmse_db_p90: float = 0.0
    predictions: int = 0


@dataclass
class Versions:
    active: str = ""
    shadow: str = ""
    previous: str = ""


@dataclass
class Status:
    versions: Versions
    models: list[Stats]
    predictions: int = 0
    fallbacks: int = 0


@dataclass
class Record:
    ue_id: str
    group: str
    first_slot: int
    channel: np.ndarray


@dataclass
class FakeDapp:
    """``nmse_of(version)`` gives each model's online NMSE (dB); each ``status()`` call scores
    ``scored_per_poll`` more predictions of every loaded model.

    Faults: the first ``short_exports`` CSI exports hold only histories one step shorter than a
    window (UEs that just restarted); the first ``unlisted_polls`` ``status()`` calls after a
    deploy do not list the new shadow yet."""

    name: str
    active: str = "v0"
    nmse: dict[str, float] = field(default_factory=lambda: {"v0": -6.0})
    candidate_nmse_db: float = -12.0
    after_promotion_nmse_db: float | None = None
    scored_per_poll: int = 500
    fail_deploy: bool = False
    short_exports: int = 0
    unlisted_polls: int = 0
    exports: int = 0
    _unlisted_left: int = 0
    shadow: str = ""
    previous: str = ""
    scored: dict[str, int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    deployed_dirs: list[Path] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deploy_model(self, directory: str | Path, version: str, mode: str = "shadow") -> None:
        with self.lock:
            self.calls.append(f"deploy:{version}:{mode}")
            if self.fail_deploy:
                raise RuntimeError("FAILED_PRECONDITION: model does not fit the served task")
            assert (Path(directory) / "model.onnx").exists()
            self.deployed_dirs.append(Path(directory))
            self.shadow = version
            self._unlisted_left = self.unlisted_polls
            self.nmse[version] = self.candidate_nmse_db
            self.scored[version] = 0

    def promote(self, version: str = "") -> Versions:
        with self.lock:
            self.calls.append(f"promote:{version}")
            assert self.shadow == version
            self.previous, self.active, self.shadow = self.active, version, ""
            if self.after_promotion_nmse_db is not None:
                self.nmse[version] = self.after_promotion_nmse_db
            return self._versions()

    def rollback(self) -> Versions:
        with self.lock:
            self.calls.append("rollback")
            self.active, self.previous = self.previous, ""
            return self._versions()

    def discard_shadow(self) -> Versions:
        with self.lock:
            self.calls.append("discard")
            self.shadow = ""
            return self._versions()

    def _versions(self) -> Versions:
        return Versions(self.active, self.shadow, self.previous)

    def status(self) -> Status:
        with self.lock:
            models = []
            hide = self.shadow if self._unlisted_left > 0 else ""
            self._unlisted_left = max(0, self._unlisted_left - 1)
            for role, version in (("active", self.active), ("shadow", self.shadow)):
                if version and version != hide:
                    self.scored[version] = self.scored.get(version, 0) + self.scored_per_poll
                    models.append(Stats(version, role, self.scored[version], self.nmse[version]))
            return Status(self._versions(), models, predictions=sum(self.scored.values()))

    def export_recent_csi(self, max_sequences: int = 0, sequence_length: int = 0,
                          ue_group: str = "") -> Iterator[Record]:
        preset = get_preset("tiny")
        rng = np.random.default_rng(0)
        with self.lock:
            self.exports += 1
            steps = preset.seq_len - 1 if self.exports <= self.short_exports else 3 * preset.seq_len
        for ue in range(4):
            shape = (steps, preset.n_ant, preset.n_rb)
            channel = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
            yield Record(f"ue-{ue}", "g0", 1000, channel.astype(np.complex64))
