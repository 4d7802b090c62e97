"""Wire packing round trips zero-copy; layout validation and presets refuse bad input."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from csi.layout import check_channel
from csi.model_io import from_model_output, to_model_input
from csi.presets import STD, get_preset
from csi.wire import COMPLEX64_LE, FLOAT32_LE, pack, unpack


def test_pack_unpack_round_trip_is_zero_copy() -> None:
    x = (np.arange(24) + 1j * np.arange(24)).astype(np.complex64).reshape(2, 3, 4)
    data, shape = pack(x)
    assert shape == (2, 3, 4) and len(data) == 24 * 8
    y = unpack(data, shape)
    np.testing.assert_array_equal(x, y)
    assert y.dtype == COMPLEX64_LE and not y.flags.owndata and not y.flags.writeable
    f = unpack(*pack(np.ones((3,), np.float64), FLOAT32_LE), FLOAT32_LE)
    assert f.dtype == FLOAT32_LE


def test_unpack_refuses_wrong_sizes() -> None:
    with pytest.raises(ValueError, match="bytes"):
        unpack(b"\x00" * 15, (2,))
    with pytest.raises(ValueError, match="negative"):
        unpack(b"", (-1, 0))


def test_check_channel() -> None:
    good = np.zeros((1, 2, 3, 4), np.complex128)
    assert check_channel(good).dtype == np.complex64
    with pytest.raises(ValueError, match="complex"):
        check_channel(np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="antennas"):
        check_channel(good, n_ant=5)
    bad = good.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_channel(bad)


def test_model_io_round_trip() -> None:
    rng = np.random.default_rng(0)
    h = (rng.standard_normal((3, 4, 5, 6)) + 1j * rng.standard_normal((3, 4, 5, 6))) * 7.0
    x, scale = to_model_input(h)
    assert x.shape == (3, 4, 5, 6, 2) and x.dtype == np.float32
    np.testing.assert_allclose(np.mean(x**2, axis=(1, 2, 3, 4)) * 2, 1.0, rtol=1e-5)
    np.testing.assert_allclose(from_model_output(x, scale), h, rtol=1e-5, atol=1e-5)


def test_presets() -> None:
    assert (STD.n_ant, STD.n_rb, STD.history, STD.horizon) == (32, 48, 16, 4)
    assert STD.rb_bandwidth_hz == 360e3
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("huge")
    with pytest.raises(ValueError, match="speed"):
        dataclasses.replace(STD, train_speed_kmh=(-5.0, 10.0))
    with pytest.raises(ValueError, match="unknown scenarios"):
        dataclasses.replace(STD, train_scenarios=("Mars",))
    with pytest.raises(AttributeError):
        STD.n_rb = 3  # type: ignore[misc]


def test_csi_never_imports_torch() -> None:
    code = ("import sys, csi.codebook, csi.dataset, csi.layout, csi.metrics, csi.model_io, "
            "csi.predictors, csi.presets, csi.synthetic, csi.wire; "
            "assert 'torch' not in sys.modules, 'csi imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)
