"""The channel tensor layout and its validation.

Every channel array in kdran is complex64 ``[batch, time, antenna, rb]``:

- ``batch``: independent UE sequences.
- ``time``: SRS occasions, one step = ``Preset.srs_period_s`` (0.5 ms at std); ``history`` past
  steps followed by ``horizon`` future steps in a training sequence.
- ``antenna``: BS ports, index ``pol * rows * cols + row * cols + col`` (polarisation-major,
  then row-major over the uniform planar array).
- ``rb``: resource blocks, one complex value per RB (its centre subcarrier), ascending frequency.

Values are linear complex gains; datasets normalise each sequence to unit average power
(``mean |h|^2 = 1`` over time, antenna and rb), so NMSE and SNR are meaningful without path loss.
"""

from __future__ import annotations

import numpy as np

CHANNEL_DTYPE = np.dtype(np.complex64)
AXES = ("batch", "time", "antenna", "rb")


def check_channel(h: np.ndarray, *, n_ant: int | None = None, n_rb: int | None = None,
                  name: str = "channel") -> np.ndarray:
    """Validate ``h`` as ``[batch, time, antenna, rb]`` complex and return it as complex64.

    Raises ``ValueError`` naming the problem (rank, antenna/rb count, non-finite values).
    """
    if not np.iscomplexobj(h):
        raise ValueError(f"{name} must be complex, got dtype {h.dtype}")
    if h.ndim != 4:
        raise ValueError(f"{name} must be [batch, time, antenna, rb], got shape {h.shape}")
    if n_ant is not None and h.shape[2] != n_ant:
        raise ValueError(f"{name} has {h.shape[2]} antennas, expected {n_ant}")
    if n_rb is not None and h.shape[3] != n_rb:
        raise ValueError(f"{name} has {h.shape[3]} RBs, expected {n_rb}")
    if not np.all(np.isfinite(h)):
        raise ValueError(f"{name} contains NaN or Inf")
    return np.asarray(h, dtype=CHANNEL_DTYPE)


def squared_norm(x: np.ndarray) -> np.ndarray:
    """``sum |x|^2`` over the last axis of a complex array, accumulated in float64.

    Works on the float32 (or float64) view of the complex values, so no complex128 copy and
    no square root are made; ``[..., n]`` -> ``[...]`` float64.
    """
    x = np.ascontiguousarray(x)
    if x.dtype == CHANNEL_DTYPE:
        flat = x.view(np.float32)
    elif x.dtype == np.complex128:
        flat = x.view(np.float64)
    else:
        flat = np.ascontiguousarray(np.abs(x), dtype=np.float64)
    return np.einsum("...i,...i->...", flat, flat, dtype=np.float64)


def mean_power(x: np.ndarray) -> np.ndarray:
    """Mean ``|x|^2`` over the last axis: ``[..., n]`` -> ``[...]`` float64."""
    return squared_norm(x) / max(x.shape[-1], 1)


def normalise_power(h: np.ndarray) -> np.ndarray:
    """Scale each sequence of ``h`` ``[batch, time, antenna, rb]`` to unit average power."""
    power = np.mean(np.abs(h) ** 2, axis=(1, 2, 3), keepdims=True)
    return (h / np.sqrt(np.maximum(power, 1e-30))).astype(CHANNEL_DTYPE)
