"""A set of channel sequences on disk: clean channels, per-sequence labels, content hash.

``ChannelSet`` stores the *clean* channel ``h`` complex64 ``[batch, time, antenna, rb]`` with
``time = history + horizon`` (each sequence normalised to unit average power) and
per-sequence labels (scenario, UE speed in km/h, carrier in Hz, SRS estimation SNR in dB).
The noisy SRS estimate that a DU would see is ``observed()``: the clean channel plus complex
Gaussian noise at each sequence's SNR, drawn from a seed stored with the set, so it is
reproducible too.

On disk a set is a directory: ``h.npy`` (memory-mapped on load), ``labels.npz`` and ``meta.json``
(preset, split, generator, seed, content hash). The content hash (sha256 over the arrays) is what a
model card cites as its data hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csi.layout import CHANNEL_DTYPE, check_channel


@dataclass
class ChannelSet:
    """Clean channel sequences with labels. ``h``: complex64 ``[batch, time, antenna, rb]``."""

    h: np.ndarray
    scenario: np.ndarray          # [batch] str
    speed_kmh: np.ndarray         # [batch] float32
    carrier_hz: np.ndarray        # [batch] float64
    snr_db: np.ndarray            # [batch] float32, SNR of the SRS estimate
    noise_seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.h.shape[0]
        for name in ("scenario", "speed_kmh", "carrier_hz", "snr_db"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"label {name} has {len(getattr(self, name))} rows, h has {n}")

    def __len__(self) -> int:
        return int(self.h.shape[0])

    def observed(self) -> np.ndarray:
        """Noisy SRS estimates ``[batch, time, antenna, rb]`` complex64 (reproducible)."""
        return srs_estimates(self.h, self.snr_db, np.random.default_rng(self.noise_seed))

    def split_time(self, history: int) -> tuple[np.ndarray, np.ndarray]:
        """(noisy history ``[b, history, a, r]``, clean future ``[b, time - history, a, r]``)."""
        if not 0 < history < self.h.shape[1]:
            raise ValueError(f"history {history} must be in 1..{self.h.shape[1] - 1}")
        return self.observed()[:, :history], np.asarray(self.h[:, history:])

    def subset(self, index: np.ndarray) -> ChannelSet:
        """Rows ``index`` (bool mask or integer indices) as a new in-memory set."""
        return ChannelSet(np.asarray(self.h[index]), self.scenario[index], self.speed_kmh[index],
                          self.carrier_hz[index], self.snr_db[index],
                          noise_seed=self.noise_seed, meta=dict(self.meta))

    def content_hash(self) -> str:
        """sha256 over the clean channels, the labels and the noise seed (hex)."""
        digest = hashlib.sha256()
        for start in range(0, len(self), 256):
            digest.update(np.ascontiguousarray(self.h[start:start + 256]).tobytes())
        for arr in (self.scenario.astype("U16"), self.speed_kmh, self.carrier_hz, self.snr_db):
            digest.update(np.ascontiguousarray(arr).tobytes())
        digest.update(str(self.noise_seed).encode())
        return digest.hexdigest()

    def save(self, directory: Path) -> str:
        """Write ``h.npy``, ``labels.npz`` and ``meta.json``; return the content hash."""
        directory.mkdir(parents=True, exist_ok=True)
        check_channel(np.asarray(self.h[:1]), name="h")
        np.save(directory / "h.npy", np.asarray(self.h, dtype=CHANNEL_DTYPE))
        np.savez(directory / "labels.npz", scenario=self.scenario.astype("U16"),
                 speed_kmh=self.speed_kmh, carrier_hz=self.carrier_hz, snr_db=self.snr_db)
        content = self.content_hash()
        meta = {**self.meta, "noise_seed": self.noise_seed, "n": len(self),
                "shape": list(self.h.shape), "content_hash": content}
        (directory / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return content

    @classmethod
    def load(cls, directory: Path) -> ChannelSet:
        """Load a saved set (``h`` memory-mapped). Raises ``FileNotFoundError`` naming the path."""
        if not (directory / "meta.json").exists():
            raise FileNotFoundError(f"no channel set at {directory} (missing meta.json)")
        meta = json.loads((directory / "meta.json").read_text())
        labels = np.load(directory / "labels.npz")
        h = np.load(directory / "h.npy", mmap_mode="r")
        return cls(h, labels["scenario"], labels["speed_kmh"], labels["carrier_hz"],
                   labels["snr_db"], noise_seed=int(meta["noise_seed"]), meta=meta)


def srs_estimates(h: np.ndarray, snr_db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SRS estimates of channels ``h`` ``[batch, time, antenna, rb]``: complex Gaussian noise at
    each sequence's ``snr_db`` ``[batch]`` relative to its mean power, drawn from ``rng``;
    complex64."""
    power = np.mean(np.abs(h) ** 2, axis=(1, 2, 3), keepdims=True)
    sigma = np.sqrt(power / 10.0 ** (np.asarray(snr_db).reshape(-1, 1, 1, 1) / 10.0) / 2.0)
    noise = rng.standard_normal(h.shape, dtype=np.float32) + 1j * rng.standard_normal(
        h.shape, dtype=np.float32)
    return (h + sigma.astype(np.float32) * noise).astype(CHANNEL_DTYPE)
