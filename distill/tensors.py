"""From a ``ChannelSet`` to model tensors, following ``csi.model_io``.

Inputs are the *noisy* SRS history (``ChannelSet.observed()``) scaled to unit power; targets are the
*clean* future on the same scale; beam labels are the best ``csi.codebook`` beam of the clean first
future step. Training batches may draw *fresh* estimation noise (``batches(..., fresh_noise=rng)``):
every epoch then sees new SRS estimates of the same channels at each sequence's SNR, so a model
cannot memorise one noise draw. ``with_noisy_labels`` gives site data instead: the targets are the
SRS estimates of the future occasions (a live site never sees the clean channel). ``TaskData``
keeps complex arrays and builds float32 torch batches on demand, so a std training set
(8000 x 20 x 32 x 48) is held once, not in several float copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from csi.codebook import best_beam, dft_codebook
from csi.dataset import ChannelSet, srs_estimates
from csi.layout import CHANNEL_DTYPE
from csi.model_io import history_scale
from csi.presets import Preset


def to_real(x: np.ndarray) -> np.ndarray:
    """Complex ``[...]`` -> float32 ``[..., 2]`` (real, imaginary)."""
    return np.stack([x.real, x.imag], axis=-1).astype(np.float32)


def to_complex(x: np.ndarray) -> np.ndarray:
    """Float ``[..., 2]`` -> complex64 ``[...]``."""
    return (x[..., 0] + 1j * x[..., 1]).astype(CHANNEL_DTYPE)


@dataclass
class Batch:
    """One training batch (float32, unit power per sequence).

    ``history`` ``[b, history, antenna, rb, 2]`` noisy; ``future`` ``[b, horizon, antenna, rb, 2]``
    clean; ``noisy_seq`` / ``clean_seq`` ``[b, history + horizon, antenna, rb, 2]`` (for MAE);
    ``beam`` ``[b]`` int64.
    """

    history: torch.Tensor
    future: torch.Tensor
    noisy_seq: torch.Tensor
    clean_seq: torch.Tensor
    beam: torch.Tensor


@dataclass
class TaskData:
    """A set ready for training: noisy and clean sequences ``[n, time, antenna, rb]`` complex64,
    per-sequence scale ``[n]`` (RMS of the noisy history), beam labels ``[n]``, speeds ``[n]``
    km/h, SRS SNR ``[n]`` dB (for fresh noise). With ``noisy_labels`` the ``clean`` sequences are
    the SRS estimates themselves (``with_noisy_labels``): the targets a live site has."""

    noisy: np.ndarray
    clean: np.ndarray
    scale: np.ndarray
    beam: np.ndarray
    speed_kmh: np.ndarray
    history: int
    snr_db: np.ndarray | None = None
    noisy_labels: bool = False

    @classmethod
    def from_set(cls, channels: ChannelSet, preset: Preset) -> TaskData:
        """Build from a ``ChannelSet`` of ``preset``'s geometry (clear error otherwise)."""
        want = (preset.seq_len, preset.n_ant, preset.n_rb)
        if tuple(channels.h.shape[1:]) != want:
            raise ValueError(f"channel set shape {tuple(channels.h.shape)} does not fit preset "
                             f"{preset.name!r}: expected [n, {want[0]}, {want[1]}, {want[2]}]")
        noisy = channels.observed()
        clean = np.asarray(channels.h, dtype=CHANNEL_DTYPE)
        scale = history_scale(noisy[:, :preset.history])
        beam = best_beam(clean[:, preset.history], dft_codebook(preset))
        return cls(noisy, clean, scale, beam.astype(np.int64),
                   np.asarray(channels.speed_kmh, dtype=np.float32), preset.history,
                   np.asarray(channels.snr_db, dtype=np.float32))

    def with_noisy_labels(self, preset: Preset) -> TaskData:
        """Site data: the same rows with their own SRS estimates as targets (``clean`` replaced
        by ``noisy``: a live site knows the estimate of each occasion, never the channel), beam
        labels from the estimate. Fresh noise is then off: there is nothing to draw it around."""
        beam = best_beam(self.noisy[:, self.history], dft_codebook(preset)).astype(np.int64)
        return replace(self, clean=self.noisy, beam=beam, noisy_labels=True)

    def __len__(self) -> int:
        return int(self.noisy.shape[0])

    def subset(self, index: np.ndarray) -> TaskData:
        """Rows ``index`` as a new ``TaskData``."""
        snr = None if self.snr_db is None else self.snr_db[index]
        return TaskData(self.noisy[index], self.clean[index], self.scale[index], self.beam[index],
                        self.speed_kmh[index], self.history, snr, self.noisy_labels)

    def fraction(self, frac: float, seed: int) -> TaskData:
        """A seeded random ``frac`` of the rows (at least one), e.g. for ``--low-data 0.1``."""
        if not 0.0 < frac <= 1.0:
            raise ValueError(f"data fraction must be in (0, 1], got {frac}")
        n = max(1, round(frac * len(self)))
        return self.subset(np.sort(np.random.default_rng(seed).permutation(len(self))[:n]))

    def history_complex(self) -> np.ndarray:
        """Noisy history ``[n, history, antenna, rb]`` at the original scale (for predictors)."""
        return self.noisy[:, :self.history]

    def future_complex(self) -> np.ndarray:
        """Clean future ``[n, horizon, antenna, rb]`` at the original scale."""
        return self.clean[:, self.history:]

    def batch(self, index: np.ndarray, fresh_noise: np.random.Generator | None = None) -> Batch:
        """Float32 torch batch of rows ``index``; with ``fresh_noise`` the history is a new SRS
        estimate of the rows' channels (noise drawn from that generator at each row's SNR)."""
        noisy_seq, scale = self.noisy[index], self.scale[index]
        if fresh_noise is not None and not self.noisy_labels:
            if self.snr_db is None:
                raise ValueError("fresh noise needs the rows' SNR (build TaskData with from_set)")
            noisy_seq = srs_estimates(self.clean[index], self.snr_db[index], fresh_noise)
            scale = history_scale(noisy_seq[:, :self.history])
        s = scale[:, None, None, None]
        noisy = torch.from_numpy(to_real(noisy_seq / s))
        clean = torch.from_numpy(to_real(self.clean[index] / s))
        return Batch(noisy[:, :self.history], clean[:, self.history:], noisy, clean,
                     torch.from_numpy(self.beam[index]))

    def batches(self, batch_size: int, rng: np.random.Generator | None = None,
                fresh_noise: np.random.Generator | None = None) -> Iterator[Batch]:
        """All rows in batches of ``batch_size``; shuffled when ``rng`` is given, with new
        estimation noise per batch when ``fresh_noise`` is (see ``batch``)."""
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        for start in range(0, len(self), batch_size):
            yield self.batch(np.sort(order[start:start + batch_size]), fresh_noise)

