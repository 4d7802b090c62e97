"""The angle-delay domain of a channel, and the noise level seen in it.

A BS array of ``pols`` x ``rows`` x ``cols`` ports and ``n_rb`` RBs has an angle-delay picture:
a 2-D DFT over the array (per polarisation) turns ports into beams (angles), and an inverse DFT
over the RBs turns frequency into delay taps. Multipath channels are sparse there (a few
clusters of angles and delays hold most of the power) while white measurement noise stays white
with the same power per coefficient, because both transforms are unitary. That is what makes
denoising possible: keep the few strong coefficients, shrink the rest.

``to_angle_delay`` / ``from_angle_delay`` map ``[..., antenna, rb]`` complex arrays (antenna
index ``pol * rows * cols + row * cols + col``, as ``csi.layout``) to ``[..., antenna, rb]``
coefficients (beam index ``pol * rows * cols + u * cols + v``, delay tap index) and back, exactly
(round trip error ~1e-7 in complex64). ``noise_power`` estimates the per-coefficient noise power
of a noisy history from its weakest coefficients, so nothing needs the SRS SNR.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Noise is estimated from this quantile of the per-coefficient mean power. Even the weakest
# coefficients of a Sionna std channel hold some leaked channel power (delays and angles fall
# between the DFT grid points), so the estimate of 18 dB test histories reads 1.10-1.47 x the
# true noise power (10th-90th percentile, median 1.26; quantiles 0.05-0.3 give medians 1.23-1.37).
NOISE_QUANTILE = 0.1


@lru_cache(maxsize=16)
def _dft(n: int) -> np.ndarray:
    """Unitary DFT matrix ``[n, n]`` complex128: ``F[k, i] = exp(-2j pi k i / n) / sqrt(n)``."""
    k = np.arange(n)
    return np.exp(-2j * np.pi * np.outer(k, k) / n) / np.sqrt(n)


@lru_cache(maxsize=16)
def angle_matrix(rows: int, cols: int, pols: int) -> np.ndarray:
    """``[antenna, antenna]`` complex128 unitary map from ports to beams: block diagonal over the
    polarisations, each block the 2-D DFT ``F_rows (x) F_cols`` of the UPA."""
    block = np.kron(_dft(rows), _dft(cols))
    return np.kron(np.eye(pols), block)


def delay_matrix(n_rb: int) -> np.ndarray:
    """``[rb, rb]`` complex128 unitary map from RBs to delay taps (inverse DFT over frequency:
    tap ``d`` holds the paths of delay ``d / (n_rb * rb_bandwidth)``, modulo the span)."""
    return _dft(n_rb).conj()


def to_angle_delay(h: np.ndarray, rows: int, cols: int, pols: int) -> np.ndarray:
    """``[..., antenna, rb]`` complex -> angle-delay coefficients ``[..., antenna, rb]`` of the
    same dtype (complex64 in, complex64 out)."""
    a = angle_matrix(rows, cols, pols).astype(h.dtype)
    d = delay_matrix(h.shape[-1]).astype(h.dtype)
    return a @ h @ d.T


def from_angle_delay(z: np.ndarray, rows: int, cols: int, pols: int) -> np.ndarray:
    """Inverse of ``to_angle_delay``: coefficients ``[..., antenna, rb]`` -> channel."""
    a = angle_matrix(rows, cols, pols).astype(z.dtype)
    d = delay_matrix(z.shape[-1]).astype(z.dtype)
    return a.conj().T @ z @ d.conj()


def noise_power(z: np.ndarray, quantile: float = NOISE_QUANTILE) -> np.ndarray:
    """Per-coefficient noise power of noisy angle-delay histories.

    ``z`` ``[batch, time, antenna, rb]`` complex -> ``[batch]`` float64: the ``quantile`` of the
    coefficients' mean power over time, divided by that quantile of the same statistic for pure
    complex Gaussian noise of unit power (a Gamma(time, 1/time) variable), so pure noise of power
    ``s`` gives ``s``. Channel power in the weakest coefficients biases it slightly upward.
    """
    b, t = z.shape[:2]
    power = np.mean(np.abs(z.reshape(b, t, -1)) ** 2, axis=1)            # [b, coefficients]
    return np.quantile(power, quantile, axis=1) / _gamma_quantile(t, quantile)


@lru_cache(maxsize=32)
def _gamma_quantile(shape: int, quantile: float) -> float:
    """``quantile`` of the mean of ``shape`` unit exponential variables (seeded Monte Carlo,
    relative error ~1e-3; avoids a scipy dependency in the numpy-only core)."""
    draws = np.random.default_rng(0).standard_gamma(shape, size=200_000) / shape
    return float(np.quantile(draws, quantile))


def wiener_smooth(z: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Denoise angle-delay histories jointly over coefficients and time (linear MMSE).

    Model: coefficient ``k`` of a sequence is ``s_k(t) + n_k(t)`` with white noise of power
    ``noise`` and a signal whose time covariance is the sequence's common one scaled by the
    coefficient's own power, ``E[s_k s_k^H] = p_k C`` (every coefficient sees the same Doppler
    spectrum, at its own strength). ``C`` comes from the time covariance pooled over all
    coefficients minus the noise, ``p_k`` from each coefficient's power minus the noise. In the
    eigenbasis ``C = U diag(c) U^H`` the estimator is a gain per coefficient and eigenvector,
    ``p_k c_i / (p_k c_i + noise)``: strong coefficients keep their slow components, weak ones
    and fast (noise-only) components are shrunk to zero.

    ``z`` ``[batch, time, antenna, rb]`` complex, ``noise`` ``[batch]`` -> the smoothed ``z``
    (complex128, same shape).
    """
    b, t = z.shape[:2]
    series = z.reshape(b, t, -1).astype(np.complex128)                     # [b, t, k]
    signal = np.maximum(np.mean(np.abs(series) ** 2, axis=1) - noise[:, None], 0.0)  # [b, k]
    pooled = series @ series.conj().transpose(0, 2, 1) / series.shape[2]   # [b, t, t]
    eig, basis = np.linalg.eigh(pooled - noise[:, None, None] * np.eye(t))
    common = np.maximum(eig, 0.0) / np.maximum(np.mean(signal, axis=1), 1e-30)[:, None]
    strength = signal[:, None, :] * common[:, :, None]                      # [b, t(eig), k]
    gain = strength / (strength + np.maximum(noise, 1e-30)[:, None, None])
    smoothed = basis @ (gain * (basis.conj().transpose(0, 2, 1) @ series))
    return smoothed.reshape(z.shape)
