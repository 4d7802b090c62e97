"""RMS Doppler spread of channel sequences, estimated from their Doppler power spectrum.

For a sequence ``h[t, a, r]`` sampled every ``srs_period_s`` the Doppler power spectrum is
estimated by a Hann-windowed periodogram of every antenna/RB time series, zero-padded and averaged
over antennas and RBs (they share the same Doppler components with different weights). The RMS
Doppler spread is the square root of the spectrum's second central moment,

    sigma^2 = sum_f (f - mu)^2 S(f) / sum_f S(f),

with the mean Doppler ``mu`` taken from the phase of the lag-1 autocorrelation and ``f`` measured on
the circle of width ``1 / srs_period_s`` centred on ``mu`` (so a spectrum near +/- Nyquist does not
wrap into a spurious spread).

The window smears a finite sequence's spectrum: the periodogram is the true spectrum convolved with
the window's power spectrum, and variances add under convolution, so the window's own spectral
variance is subtracted (clipped at zero). A pure complex exponential therefore measures ~0 Hz and a
Jakes (uniform-angle) spectrum with maximum Doppler ``f_d`` measures about ``f_d / sqrt(2)``.
Short sequences (tens of steps) still give noisy per-sequence values; average over sequences for a
statistic. Spreads are only meaningful well inside the Nyquist range ``+/- 1 / (2 srs_period_s)``.
"""

from __future__ import annotations

import numpy as np

_MIN_FFT = 256


def _hann(steps: int) -> np.ndarray:
    """Hann window of ``steps`` samples without its zero end points, unit energy (``[steps]``)."""
    w = np.hanning(steps + 2)[1:-1]
    return w / np.sqrt(np.sum(w**2))


def _centred_variance(spectrum: np.ndarray, freqs: np.ndarray, mean_hz: np.ndarray,
                      sampling_hz: float) -> np.ndarray:
    """Second central moment ``[batch]`` (Hz^2) of ``spectrum`` ``[batch, n_fft]`` about
    ``mean_hz`` ``[batch]``, offsets wrapped into ``[-sampling_hz/2, sampling_hz/2)``."""
    offset = (freqs[None, :] - mean_hz[:, None] + sampling_hz / 2) % sampling_hz - sampling_hz / 2
    total = np.maximum(np.sum(spectrum, axis=1), 1e-30)
    return np.sum(offset**2 * spectrum, axis=1) / total


def doppler_spread_hz(h: np.ndarray, srs_period_s: float) -> np.ndarray:
    """RMS Doppler spread in Hz of each sequence of ``h`` ``[batch, time, antenna, rb]``.

    ``srs_period_s`` is the time step in seconds. Returns float64 ``[batch]``. Raises
    ``ValueError`` for a non-4-D input, fewer than 3 time steps or a non-positive period.
    """
    if h.ndim != 4:
        raise ValueError(f"h must be [batch, time, antenna, rb], got shape {h.shape}")
    steps = h.shape[1]
    if steps < 3:
        raise ValueError(f"need at least 3 time steps to estimate a Doppler spread, got {steps}")
    if srs_period_s <= 0:
        raise ValueError(f"srs_period_s must be positive, got {srs_period_s}")
    sampling_hz = 1.0 / srs_period_s
    x = np.asarray(h, dtype=np.complex128)
    lag1 = np.sum(x[:, 1:] * np.conj(x[:, :-1]), axis=(1, 2, 3))
    mean_hz = np.angle(lag1) * sampling_hz / (2.0 * np.pi)

    n_fft = max(_MIN_FFT, 1 << int(np.ceil(np.log2(8 * steps))))
    window = _hann(steps)
    freqs = np.fft.fftfreq(n_fft, d=srs_period_s)
    spectrum = np.mean(np.abs(np.fft.fft(x * window[None, :, None, None], n=n_fft, axis=1)) ** 2,
                       axis=(2, 3))                                        # [batch, n_fft]
    window_spectrum = np.abs(np.fft.fft(window, n=n_fft)) ** 2
    window_var = _centred_variance(window_spectrum[None, :], freqs, np.zeros(1), sampling_hz)
    variance = _centred_variance(spectrum, freqs, mean_hz, sampling_hz) - window_var
    return np.sqrt(np.maximum(variance, 0.0))
