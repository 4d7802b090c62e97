"""Classical predictors: exact on pure Doppler, ordering on noisy multipath, shapes and errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from csi.metrics import nmse_db
from csi.predictors import ArWiener, Kalman, OutdatedCsi, classical_predictors, fit_ar
from csi.presets import STD, TINY
from csi.synthetic import multipath_channels, synthetic_set


def _pure_doppler(n: int = 4, steps: int = 20, ant: int = 8, rb: int = 6) -> np.ndarray:
    """One complex exponential per antenna/RB with a per-sequence Doppler frequency."""
    rng = np.random.default_rng(7)
    omega = rng.uniform(-2.5, 2.5, n)                                   # rad per SRS period
    amp = rng.standard_normal((n, ant, rb)) + 1j * rng.standard_normal((n, ant, rb))
    t = np.arange(steps)
    return (amp[:, None] * np.exp(1j * omega[:, None, None, None] * t[None, :, None, None])
            ).astype(np.complex64)


def test_ar_predicts_single_path_doppler_to_numerical_precision() -> None:
    h = _pure_doppler()
    for order in (1, 2, 4):
        future = ArWiener(order=order).predict(h[:, :16], horizon=4)
        assert nmse_db(future, h[:, 16:]) < -100.0, order


def test_ar_is_exact_on_noiseless_multipath_with_enough_order() -> None:
    h = multipath_channels(TINY, 3, speed_kmh=90.0, n_paths=3, seed=1)
    future = ArWiener(order=3).predict(h[:, :TINY.history], horizon=TINY.horizon)
    assert nmse_db(future, h[:, TINY.history:]) < -60.0


def test_kalman_beats_outdated_on_doppler_channel() -> None:
    h = _pure_doppler()
    truth = h[:, 16:]
    kalman = nmse_db(Kalman(order=2).predict(h[:, :16], 4), truth)
    outdated = nmse_db(OutdatedCsi().predict(h[:, :16], 4), truth)
    assert kalman < outdated - 20.0


def test_ordering_on_noisy_multipath() -> None:
    """At 18 dB SNR and 60-100 km/h the model-based predictors beat outdated CSI clearly."""
    data = synthetic_set(TINY, 64, speed_range_kmh=(60.0, 100.0), snr_db=18.0, n_paths=4, seed=3)
    history, future = data.split_time(TINY.history)
    scores = {p.name: nmse_db(p.predict(history, TINY.horizon), future)
              for p in classical_predictors()}
    assert scores["ar"] < scores["outdated"] - 3.0
    assert scores["kalman"] < scores["outdated"] - 3.0


def test_predict_shapes_and_dtype() -> None:
    h = multipath_channels(TINY, 5, speed_kmh=30.0, seed=2)
    for predictor in classical_predictors():
        out = predictor.predict(h[:, :TINY.history], horizon=3)
        assert out.shape == (5, 3, TINY.n_ant, TINY.n_rb)
        assert out.dtype == np.complex64


def test_fit_ar_recovers_known_coefficient() -> None:
    h = _pure_doppler(n=2)
    coef, resid = fit_ar(h, order=1)
    ratio = h[:, 1, 0, 0] / h[:, 0, 0, 0]
    np.testing.assert_allclose(coef[:, 0], ratio, atol=1e-5)
    assert np.all(resid < 1e-8)


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="order"):
        ArWiener(order=0)
    with pytest.raises(ValueError, match="steps"):
        ArWiener(order=4).predict(np.zeros((1, 3, 2, 2), np.complex64), 2)
    with pytest.raises(ValueError, match=r"\[batch, time, antenna, rb\]"):
        OutdatedCsi().predict(np.zeros((3, 2, 2), np.complex64), 2)


def test_std_scale_runs_in_seconds() -> None:
    """A quarter of the std test set runs through all three baselines in seconds."""
    h = multipath_channels(STD, 250, speed_kmh=50.0, n_paths=6, seed=4)
    start = time.perf_counter()
    for predictor in classical_predictors():
        predictor.predict(h[:, :STD.history], STD.horizon)
    assert time.perf_counter() - start < 30.0  # generous; `kdran bench accuracy` times it
