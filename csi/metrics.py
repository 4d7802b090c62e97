"""Prediction quality metrics: NMSE, beamforming gain, achievable-rate loss, beam accuracy.

All functions take channels in the ``[batch, time, antenna, rb]`` layout (``time`` = horizon steps
being scored) and never warn or return NaN for a perfect prediction: NMSE in dB is floored at
``NMSE_FLOOR_DB``.
"""

from __future__ import annotations

import numpy as np

from csi.layout import squared_norm

NMSE_FLOOR_DB = -300.0
_TINY = 1e-30


def to_db(x: np.ndarray | float) -> np.ndarray:
    """Linear power ratio -> dB, floored at ``NMSE_FLOOR_DB`` (so a zero error is finite)."""
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(10.0 * np.log10(np.maximum(x, _TINY)), NMSE_FLOOR_DB)


def nmse_per_sample(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Linear NMSE per sequence and step: ``||pred - true||^2 / ||true||^2`` over antenna and rb.

    Shapes ``[batch, time, antenna, rb]`` -> ``[batch, time]`` float64.
    """
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {pred.shape} != truth shape {true.shape}")
    flat = (*true.shape[:-2], -1)
    err = squared_norm((pred - true).reshape(flat))
    ref = squared_norm(true.reshape(flat))
    return err / np.maximum(ref, _TINY)


def nmse_db(pred: np.ndarray, true: np.ndarray) -> float:
    """Overall NMSE in dB: mean linear NMSE over sequences and steps, then dB."""
    return float(to_db(np.mean(nmse_per_sample(pred, true))))


def nmse_db_per_step(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """NMSE in dB per horizon step: ``[time]`` (mean over sequences in linear, then dB)."""
    return to_db(np.mean(nmse_per_sample(pred, true), axis=0))


def mrt_gain(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Normalised MRT beamforming gain per sample, step and RB, in [0, 1].

    The BS precodes with ``w = pred / ||pred||`` (per RB, over antennas) and the gain is
    ``|w^H true|^2 / ||true||^2``; 1 means the prediction was as good as perfect CSI.
    Shapes ``[batch, time, antenna, rb]`` -> ``[batch, time, rb]``.
    """
    pred = pred.astype(np.complex128)
    inner = np.abs(np.sum(pred.conj() * true, axis=-2)) ** 2
    norms = np.sum(np.abs(pred) ** 2, axis=-2) * np.sum(np.abs(true) ** 2, axis=-2)
    return inner / np.maximum(norms, _TINY)


def rate_loss(pred: np.ndarray, true: np.ndarray, snr_db: float = 10.0) -> float:
    """Relative achievable-rate loss of MRT with the predicted channel vs perfect CSI.

    Rate per RB is ``log2(1 + snr * ||h||^2 * gain / mean ||h||^2)``: ``snr_db`` is the
    post-beamforming SNR of an average RB with perfect CSI. Returns
    ``1 - sum(rate_pred) / sum(rate_perfect)`` (0 = no loss, 1 = nothing delivered).
    """
    snr = 10.0 ** (snr_db / 10.0)
    power = np.sum(np.abs(true.astype(np.complex128)) ** 2, axis=-2)
    scale = snr / max(float(np.mean(power)), _TINY)
    perfect = np.log2(1.0 + scale * power)
    achieved = np.log2(1.0 + scale * power * mrt_gain(pred, true))
    return float(1.0 - achieved.sum() / max(perfect.sum(), _TINY))


def topk_beam_accuracy(scores: np.ndarray, true_beam: np.ndarray, k: int) -> float:
    """Fraction of samples whose true best beam is among the ``k`` highest ``scores``.

    ``scores`` is ``[n, n_beams]`` (any monotone score: gain, logit); ``true_beam`` is ``[n]``.
    """
    if scores.shape[0] != true_beam.shape[0]:
        raise ValueError(f"{scores.shape[0]} score rows for {true_beam.shape[0]} labels")
    top = np.argpartition(-scores, kth=min(k, scores.shape[1]) - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == true_beam[:, None], axis=1)))
