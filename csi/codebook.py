"""2-D DFT beam codebook for a dual-polarised uniform planar array (3GPP Type-I style).

A beam is ``(l, m, phase)``: an oversampled DFT vector over the array's rows (``l``) and columns
(``m``) applied to both polarisations, with co-phasing ``phase`` in {1, j, -1, -j} on the second
polarisation. Vectors have unit norm. Beam index order: ``((l * n_m) + m) * n_phase + phase``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from csi.presets import Preset

OVERSAMPLING = 2
CO_PHASES = np.array([1, 1j, -1, -1j], dtype=np.complex128)


def codebook_size(preset: Preset) -> int:
    """Number of beams: (O*rows) x (O*cols) directions x co-phases (x1 if single-polarised)."""
    n_phase = len(CO_PHASES) if preset.pols == 2 else 1
    return OVERSAMPLING * preset.rows * OVERSAMPLING * preset.cols * n_phase


def _dft_vectors(n: int) -> np.ndarray:
    """``[O*n, n]`` oversampled DFT steering vectors (unit norm)."""
    k = np.arange(OVERSAMPLING * n)[:, None]
    i = np.arange(n)[None, :]
    return np.exp(2j * np.pi * k * i / (OVERSAMPLING * n)) / np.sqrt(n)


def spatial_codebook(preset: Preset) -> np.ndarray:
    """The beam directions: ``[(O*rows) * (O*cols), rows * cols]`` complex128 DFT vectors of one
    polarisation (unit norm), direction index ``l * n_m + m``."""
    rows, cols = _dft_vectors(preset.rows), _dft_vectors(preset.cols)
    return np.einsum("li,mj->lmij", rows, cols).reshape(len(rows) * len(cols), -1)


def dft_codebook(preset: Preset) -> np.ndarray:
    """Codebook matrix ``[n_beams, antenna]`` complex64 with unit-norm rows."""
    spatial = spatial_codebook(preset)
    if preset.pols == 1:
        return spatial.astype(np.complex64)
    beams = np.concatenate(
        [spatial[:, None, :].repeat(len(CO_PHASES), 1),
         spatial[:, None, :] * CO_PHASES[None, :, None]], axis=2)
    return (beams.reshape(-1, 2 * spatial.shape[1]) / np.sqrt(2)).astype(np.complex64)


def beam_gains(h: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Wideband gain of each beam: ``sum_rb |w^H h|^2``.

    ``h`` is ``[..., antenna, rb]``; ``codebook`` is ``[n_beams, antenna]``; returns
    ``[..., n_beams]`` float32 (linear power, same scale as ``|h|^2``).
    """
    proj = np.einsum("ba,...ar->...br", codebook.conj(), h)
    return np.sum(np.abs(proj) ** 2, axis=-1).astype(np.float32)


def best_beam(h: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the best beam for each ``[..., antenna, rb]`` channel: ``[...]`` int64."""
    return np.argmax(beam_gains(h, codebook), axis=-1)
