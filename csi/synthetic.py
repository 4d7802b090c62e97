"""Geometric multipath channels in numpy: fast, exact Doppler, no Sionna needed.

Used by unit tests, the dApp and E2 tests and anywhere a channel with known physics is wanted
without torch. Each sequence is a sum of ``n_paths`` plane waves, each with a complex gain, a
delay, a direction on the UPA and a Doppler shift ``f_d cos(psi)`` with ``f_d = v / c * f_c``. With
``n_paths=1`` every antenna/RB series is a pure complex exponential in time.
"""

from __future__ import annotations

import numpy as np

from csi.dataset import ChannelSet
from csi.layout import CHANNEL_DTYPE, normalise_power
from csi.presets import Preset

SPEED_OF_LIGHT = 299_792_458.0


def max_doppler_hz(speed_kmh: float | np.ndarray, carrier_hz: float) -> np.ndarray:
    """Maximum Doppler shift ``v / c * f_c`` in Hz."""
    return np.asarray(speed_kmh) / 3.6 / SPEED_OF_LIGHT * carrier_hz


def multipath_channels(preset: Preset, n: int, speed_kmh: np.ndarray | float,
                       n_paths: int = 8, delay_spread_s: float = 300e-9,
                       steps: int | None = None, seed: int = 0) -> np.ndarray:
    """Random multipath channels ``[n, steps, antenna, rb]`` complex64, unit power per sequence.

    ``speed_kmh`` is a scalar or ``[n]``; ``steps`` defaults to ``preset.seq_len``.
    """
    rng = np.random.default_rng(seed)
    steps = preset.seq_len if steps is None else steps
    speeds = np.broadcast_to(np.asarray(speed_kmh, dtype=np.float64), (n,))
    gains = rng.standard_normal((n, n_paths)) + 1j * rng.standard_normal((n, n_paths))
    gains /= np.sqrt(2)
    delays = rng.exponential(delay_spread_s, (n, n_paths))
    u, v = rng.uniform(-1, 1, (2, n, n_paths))
    pol = np.exp(2j * np.pi * rng.uniform(0, 1, (n, n_paths, preset.pols)))
    doppler = max_doppler_hz(speeds, preset.carrier_hz)[:, None] * np.cos(
        rng.uniform(0, 2 * np.pi, (n, n_paths)))
    rows = np.arange(preset.rows)[None, None, :, None]
    cols = np.arange(preset.cols)[None, None, None, :]
    spatial = np.exp(1j * np.pi * (rows * u[..., None, None] + cols * v[..., None, None]))
    steer = (pol[..., :, None, None] * spatial[..., None, :, :]).reshape(n, n_paths, -1)
    freqs = np.arange(preset.n_rb) * preset.rb_bandwidth_hz
    freq_resp = np.exp(-2j * np.pi * delays[..., None] * freqs)               # [n, k, rb]
    times = np.arange(steps) * preset.srs_period_s
    time_resp = np.exp(2j * np.pi * doppler[..., None] * times)               # [n, k, t]
    h = np.einsum("nk,nkt,nka,nkr->ntar", gains, time_resp, steer, freq_resp)
    return normalise_power(h.astype(CHANNEL_DTYPE))


def synthetic_set(preset: Preset, n: int, speed_range_kmh: tuple[float, float] | None = None,
                  snr_db: float | tuple[float, float] | None = None, n_paths: int = 8,
                  seed: int = 0) -> ChannelSet:
    """A labelled ``ChannelSet`` of multipath channels (scenario label ``"synthetic"``)."""
    rng = np.random.default_rng(seed + 1)
    lo, hi = speed_range_kmh or preset.train_speed_kmh
    speeds = rng.uniform(lo, hi, n).astype(np.float32)
    snr_spec = preset.test_snr_db if snr_db is None else snr_db
    snrs = (rng.uniform(*snr_spec, n) if isinstance(snr_spec, tuple)
            else np.full(n, snr_spec)).astype(np.float32)
    h = multipath_channels(preset, n, speeds, n_paths=n_paths, seed=seed)
    return ChannelSet(h, np.full(n, "synthetic"), speeds, np.full(n, preset.carrier_hz),
                      snrs, noise_seed=seed + 2,
                      meta={"preset": preset.name, "generator": "csi.synthetic", "seed": seed})
