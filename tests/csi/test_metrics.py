"""Metrics: NMSE (dB, per step, -inf-safe), MRT gain, rate loss, codebook and beam accuracy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from csi.codebook import beam_gains, best_beam, codebook_size, dft_codebook
from csi.metrics import (
    NMSE_FLOOR_DB,
    mrt_gain,
    nmse_db,
    nmse_db_per_step,
    rate_loss,
    topk_beam_accuracy,
)
from csi.presets import STD, TINY
from csi.synthetic import multipath_channels


def test_nmse_of_the_truth_is_finite_and_floored() -> None:
    h = multipath_channels(TINY, 4, 50.0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nmse_db(h, h) == NMSE_FLOOR_DB
        assert np.all(nmse_db_per_step(h, h) == NMSE_FLOOR_DB)
        zero = np.zeros_like(h)
        assert np.isfinite(nmse_db(zero, zero))


def test_nmse_known_values() -> None:
    h = multipath_channels(TINY, 4, 50.0, seed=0)
    assert nmse_db(np.zeros_like(h), h) == pytest.approx(0.0, abs=1e-9)
    assert nmse_db(1.1 * h, h) == pytest.approx(-20.0, abs=1e-4)     # 10 % amplitude error
    per_step = nmse_db_per_step(np.concatenate([h[:, :1], 1.1 * h[:, 1:2]], axis=1), h[:, :2])
    assert per_step[0] == NMSE_FLOOR_DB and per_step[1] == pytest.approx(-20.0, abs=1e-4)


def test_nmse_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        nmse_db(np.zeros((1, 2, 3, 4), np.complex64), np.zeros((1, 2, 3, 5), np.complex64))


def test_mrt_gain_and_rate_loss() -> None:
    h = multipath_channels(TINY, 8, 50.0, seed=1)
    assert np.allclose(mrt_gain(h, h), 1.0)
    assert rate_loss(h, h) == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(mrt_gain(np.exp(1j * 0.3) * h, h), 1.0)      # phase does not matter
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape)).astype(np.complex64)
    assert 0.0 < rate_loss(h + 0.3 * noise, h) < rate_loss(h + 3.0 * noise, h) < 1.0
    assert np.all(mrt_gain(h + noise, h) <= 1.0 + 1e-9)


def test_codebook_geometry() -> None:
    for preset in (TINY, STD):
        cb = dft_codebook(preset)
        assert cb.shape == (codebook_size(preset), preset.n_ant)
        np.testing.assert_allclose(np.linalg.norm(cb, axis=1), 1.0, atol=1e-5)
    assert codebook_size(STD) == 256


def test_best_beam_finds_a_codebook_direction() -> None:
    cb = dft_codebook(STD)
    h = np.repeat(cb[37][:, None], STD.n_rb, axis=1)[None]          # [1, antenna, rb]
    assert best_beam(h, cb)[0] == 37
    gains = beam_gains(h, cb)
    assert gains.shape == (1, 256)
    assert topk_beam_accuracy(gains, np.array([37]), k=1) == 1.0
    assert topk_beam_accuracy(-gains, np.array([37]), k=3) == 0.0
