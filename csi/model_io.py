"""The contract between a trained predictor (ONNX or torch) and whoever runs it.

A model sees power-normalised real tensors, never raw complex estimates:

- input ``history``: float32 ``[batch, history, antenna, rb, 2]`` (last axis = real, imaginary),
  each sequence scaled to unit average power over its history (``to_model_input``);
- output ``future``: float32 ``[batch, horizon, antenna, rb, 2]`` on the same scale;
- output ``beam_logits``: float32 ``[batch, n_beams]``: scores over the ``csi.codebook`` beams for
  the first predicted step (higher = better).

``from_model_output`` undoes the scaling. The ONNX file carries ``MODEL_METADATA_KEYS`` in its
metadata_props, so a runtime can check a model fits its task before serving it.
"""

from __future__ import annotations

import numpy as np

from csi.layout import CHANNEL_DTYPE

INPUT_NAME = "history"
OUTPUT_FUTURE = "future"
OUTPUT_BEAM = "beam_logits"
MODEL_METADATA_KEYS = ("kdran_preset", "history", "horizon", "n_ant", "n_rb", "n_beams", "version")


def history_scale(history: np.ndarray) -> np.ndarray:
    """RMS amplitude of each sequence's history: ``[batch, time, antenna, rb]`` -> ``[batch]``."""
    power = np.mean(np.abs(history) ** 2, axis=(1, 2, 3))
    return np.sqrt(np.maximum(power, 1e-30)).astype(np.float32)


def to_model_input(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Complex ``[b, t, a, r]`` -> (float32 ``[b, t, a, r, 2]`` at unit power, scale ``[b]``)."""
    scale = history_scale(history)
    scaled = history / scale[:, None, None, None]
    return np.stack([scaled.real, scaled.imag], axis=-1).astype(np.float32), scale


def from_model_output(future: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Float ``[b, h, a, r, 2]`` and scale ``[b]`` -> complex64 ``[b, h, a, r]`` at input scale."""
    out = (future[..., 0] + 1j * future[..., 1]) * scale[:, None, None, None]
    return out.astype(CHANNEL_DTYPE)
