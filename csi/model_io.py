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

from csi.layout import CHANNEL_DTYPE, mean_power

INPUT_NAME = "history"
OUTPUT_FUTURE = "future"
OUTPUT_BEAM = "beam_logits"
MODEL_METADATA_KEYS = ("kdran_preset", "history", "horizon", "n_ant", "n_rb", "n_beams", "version")


def history_scale(history: np.ndarray) -> np.ndarray:
    """RMS amplitude of each sequence's history: ``[batch, time, antenna, rb]`` -> ``[batch]``.

    Complex64/128 input is summed as one BLAS dot product per sequence over its float view
    (a few µs for a std history; relative error ~1e-8, far below what a scale needs); other
    dtypes through ``csi.layout.mean_power``."""
    flat = np.ascontiguousarray(history).reshape(history.shape[0], -1)
    floats = {CHANNEL_DTYPE: np.float32, np.dtype(np.complex128): np.float64}.get(flat.dtype)
    if floats is None:
        power = mean_power(flat)
    else:
        pairs = flat.view(floats)
        power = (pairs[:, None, :] @ pairs[:, :, None])[:, 0, 0] / max(flat.shape[1], 1)
    return np.sqrt(np.maximum(power, 1e-30)).astype(np.float32)


def to_model_input(history: np.ndarray, out: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Complex ``[b, t, a, r]`` -> (float32 ``[b, t, a, r, 2]`` at unit power, scale ``[b]``).

    The float view of a complex64 array is exactly the (real, imaginary) last-axis layout, so
    this costs one scaled pass and no stacking. ``out`` (float32 ``[b, t, a, r, 2]``, C-contiguous,
    e.g. a runtime's pre-allocated input buffer) receives the result instead of a new array.
    """
    scale = history_scale(history)
    factor = (1.0 / scale)[:, None, None, None]
    if out is None:
        scaled = np.ascontiguousarray(history * factor, dtype=CHANNEL_DTYPE)
        return scaled.view(np.float32).reshape(*scaled.shape, 2), scale
    if out.shape != (*history.shape, 2) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 {(*history.shape, 2)} array, "
                         f"got {out.dtype} {out.shape}")
    np.multiply(history, factor, out=out.view(CHANNEL_DTYPE).reshape(history.shape),
                casting="same_kind")
    return out, scale


def from_model_output(future: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Float ``[b, h, a, r, 2]`` and scale ``[b]`` -> complex64 ``[b, h, a, r]`` at input scale."""
    pairs = np.ascontiguousarray(future, dtype=np.float32)
    as_complex = pairs.view(CHANNEL_DTYPE).reshape(pairs.shape[:-1])
    return (as_complex * scale.astype(np.float32)[:, None, None, None]).astype(
        CHANNEL_DTYPE, copy=False)
