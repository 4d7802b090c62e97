"""Angle-delay transforms, noise estimation, Wiener smoothing and the ``ar_ad`` predictor."""

from __future__ import annotations

import numpy as np
import pytest

from csi.angle_delay import (
    angle_matrix,
    delay_matrix,
    from_angle_delay,
    noise_power,
    to_angle_delay,
    wiener_smooth,
)
from csi.metrics import nmse_db
from csi.predictors import AngleDelayAr, ArWiener
from csi.presets import STD, TINY
from csi.synthetic import multipath_channels, synthetic_set


def _noise(shape: tuple[int, ...], power: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.sqrt(power / 2) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
            ).astype(np.complex64)


def test_transforms_are_unitary_and_invert_exactly() -> None:
    for matrix in (angle_matrix(4, 4, 2), delay_matrix(48)):
        np.testing.assert_allclose(matrix @ matrix.conj().T, np.eye(len(matrix)), atol=1e-12)
    h = multipath_channels(STD, 3, speed_kmh=40.0, seed=1)
    z = to_angle_delay(h, STD.rows, STD.cols, STD.pols)
    assert z.dtype == np.complex64 and z.shape == h.shape
    np.testing.assert_allclose(np.sum(np.abs(z) ** 2), np.sum(np.abs(h) ** 2), rtol=1e-4)
    back = from_angle_delay(z, STD.rows, STD.cols, STD.pols)
    np.testing.assert_allclose(back, h, atol=2e-5)


def test_a_single_on_grid_path_is_one_coefficient() -> None:
    """A plane wave from a DFT direction at an integer delay tap lands in one coefficient."""
    rows, cols, pols, n_rb = 4, 4, 2, 48
    steer = np.kron(np.exp(2j * np.pi * 1 * np.arange(rows) / rows),
                    np.exp(2j * np.pi * 3 * np.arange(cols) / cols))
    freq = np.exp(-2j * np.pi * 5 * np.arange(n_rb) / n_rb)
    h = np.zeros((1, 1, rows * cols * pols, n_rb), np.complex128)
    h[0, 0, :rows * cols] = np.outer(steer, freq)
    power = np.abs(to_angle_delay(h, rows, cols, pols)) ** 2
    assert power.max() / power.sum() > 1 - 1e-9


def test_noise_power_reads_pure_noise_and_tracks_its_level() -> None:
    for power in (0.01, 1.0):
        z = _noise((8, 16, 32, 48), power, seed=3)
        np.testing.assert_allclose(noise_power(z), power, rtol=0.05)


def test_wiener_smooth_removes_noise_from_a_sparse_channel() -> None:
    """Sparse channel + noise at 10 dB: smoothing cuts the error by several dB, and leaves a
    noise-free channel almost untouched."""
    h = multipath_channels(STD, 4, speed_kmh=60.0, n_paths=3, seed=5)[:, :16]
    z = to_angle_delay(h, STD.rows, STD.cols, STD.pols)
    noise = 0.1 * float(np.mean(np.abs(z) ** 2))
    noisy = z + _noise(z.shape, noise, seed=6)
    smoothed = wiener_smooth(noisy, np.full(4, noise))
    assert nmse_db(smoothed, z) < nmse_db(noisy, z) - 6.0
    clean = wiener_smooth(z, np.full(4, 1e-9))
    assert nmse_db(clean, z) < -40.0


def test_ar_ad_beats_ar_on_noisy_multipath() -> None:
    data = synthetic_set(STD, 48, speed_range_kmh=(30.0, 100.0), snr_db=12.0, n_paths=4, seed=7)
    history, future = data.split_time(STD.history)
    ar_ad = AngleDelayAr.for_preset(STD).predict(history, STD.horizon)
    ar14 = ArWiener(14).predict(history, STD.horizon)
    assert ar_ad.shape == future.shape and ar_ad.dtype == np.complex64
    assert nmse_db(ar_ad, future) < nmse_db(ar14, future) - 3.0


def test_ar_ad_is_exact_enough_on_noiseless_doppler() -> None:
    h = multipath_channels(TINY, 3, speed_kmh=60.0, n_paths=2, seed=8)
    predictor = AngleDelayAr(TINY.rows, TINY.cols, TINY.pols, order=4)
    assert nmse_db(predictor.predict(h[:, :TINY.history], TINY.horizon),
                   h[:, TINY.history:]) < -25.0


def test_ar_ad_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="order"):
        AngleDelayAr(4, 4, 2, order=0)
    with pytest.raises(ValueError, match="leakage"):
        AngleDelayAr(4, 4, 2, leakage=0.0)
    with pytest.raises(ValueError, match="antennas"):
        AngleDelayAr(4, 4, 2).predict(np.zeros((1, 16, 8, 48), np.complex64), 4)
