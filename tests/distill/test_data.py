"""distill.data: Sionna channel datasets (tiny preset, small n) and csi.doppler.

Sionna's import costs several seconds once per session; every generation here is a few dozen
sequences at the tiny geometry (8 ports, 12 RBs, 10 steps).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from csi.dataset import ChannelSet
from csi.doppler import doppler_spread_hz
from csi.presets import TINY
from csi.synthetic import max_doppler_hz, multipath_channels
from distill.data import (
    ALL_SPLITS,
    SPLITS,
    Recipe,
    generate,
    generate_from_recipe,
    load_or_generate,
    recipe_for,
)

N = 6


@pytest.fixture(scope="module")
def test_set() -> ChannelSet:
    return generate(TINY, "test", n=N, progress=False)


def _fixed_speed(scenario: str, speed_kmh: float, carrier_hz: float = TINY.carrier_hz) -> Recipe:
    return Recipe(split="custom", scenarios=(scenario,), speed_kmh=(speed_kmh, speed_kmh),
                  snr_db=(18.0, 18.0), carrier_hz=carrier_hz, steps=TINY.seq_len)


def _median_spread(recipe: Recipe, seed: int, n: int = 8) -> float:
    channel_set = generate_from_recipe(TINY, recipe, n, seed=seed, progress=False)
    return float(np.median(doppler_spread_hz(channel_set.h, TINY.srs_period_s)))


# -- shape, dtype, power, labels ------------------------------------------------------------------

def test_documented_shape_dtype_and_unit_power(test_set: ChannelSet) -> None:
    assert test_set.h.shape == (N, TINY.history + TINY.horizon, TINY.n_ant, TINY.n_rb)
    assert test_set.h.dtype == np.complex64
    assert np.all(np.isfinite(test_set.h))
    power = np.mean(np.abs(test_set.h) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(power, 1.0, rtol=1e-5)


def test_labels_and_meta_follow_the_test_recipe(test_set: ChannelSet) -> None:
    assert set(test_set.scenario) == set(TINY.train_scenarios)
    counts = [int(np.sum(test_set.scenario == s)) for s in TINY.train_scenarios]
    assert max(counts) - min(counts) <= 1                       # split evenly
    lo, hi = TINY.train_speed_kmh
    assert np.all((test_set.speed_kmh >= lo) & (test_set.speed_kmh <= hi))
    assert np.all(test_set.snr_db == np.float32(TINY.test_snr_db))
    assert np.all(test_set.carrier_hz == TINY.carrier_hz)
    meta = test_set.meta
    assert (meta["preset"], meta["split"], meta["generator"]) == ("tiny", "test", "sionna")
    assert meta["sionna_version"].startswith("2.")
    assert meta["recipe"] == json.loads(json.dumps(recipe_for(TINY, "test").to_dict()))
    assert isinstance(meta["seed"], int)


def test_train_snr_is_drawn_in_the_train_range() -> None:
    train = generate(TINY, "train", n=N, progress=False)
    assert np.all((train.snr_db >= TINY.train_snr_db[0]) & (train.snr_db <= TINY.train_snr_db[1]))
    assert len(np.unique(train.snr_db)) == N


@pytest.mark.parametrize("split", [s for s in ALL_SPLITS if s != "test"])
def test_every_split_generates(split: str) -> None:
    channel_set = generate(TINY, split, n=4, progress=False)
    recipe = recipe_for(TINY, split)
    assert channel_set.h.shape == (4, TINY.seq_len, TINY.n_ant, TINY.n_rb)
    assert set(channel_set.scenario) <= set(recipe.scenarios)
    assert np.all(channel_set.carrier_hz == recipe.carrier_hz)
    lo, hi = recipe.speed_kmh
    assert np.all((channel_set.speed_kmh >= lo) & (channel_set.speed_kmh <= hi))
    np.testing.assert_allclose(np.mean(np.abs(channel_set.h) ** 2, axis=(1, 2, 3)), 1.0,
                               rtol=1e-5)


@pytest.mark.parametrize("scenario", ["UMa", "UMi", "CDL-A", "CDL-B", "CDL-C", "CDL-D", "CDL-E",
                                      "Rician"])
def test_every_scenario_generates_distinct_channels(scenario: str) -> None:
    channel_set = generate_from_recipe(TINY, _fixed_speed(scenario, 30.0), 2, seed=3,
                                       progress=False)
    assert np.all(channel_set.scenario == scenario)
    h = channel_set.h
    assert np.all(np.isfinite(h))
    assert not np.allclose(h[0], h[1])                          # independent drops/draws
    assert np.std(np.abs(h[0])) > 0.05                          # frequency/space selective


def test_heldout_28ghz_uses_its_carrier_and_pedestrian_speeds() -> None:
    recipe = recipe_for(TINY, "heldout-28ghz")
    assert recipe.carrier_hz == TINY.heldout_carrier_hz
    assert recipe.speed_kmh == TINY.heldout_carrier_speed_kmh
    assert recipe_for(TINY, "heldout-profile").scenarios == TINY.heldout_scenarios
    assert recipe_for(TINY, "heldout-speed").speed_kmh == TINY.heldout_speed_kmh


# -- physics: Doppler, Rician K-factor, port order ------------------------------------------------

def test_measured_doppler_spread_grows_with_speed() -> None:
    spreads = {speed: _median_spread(_fixed_speed("UMa", speed), seed=11)
               for speed in (10.0, 100.0, 300.0)}
    assert spreads[10.0] < spreads[100.0] < spreads[300.0]
    # An RMS spread cannot exceed the maximum Doppler shift v / c * f_c (plus window leakage).
    assert spreads[10.0] < 1.5 * max_doppler_hz(10.0, TINY.carrier_hz)
    assert spreads[100.0] > 0.2 * max_doppler_hz(100.0, TINY.carrier_hz)


def test_doppler_spread_scales_with_carrier() -> None:
    # f_d = v / c * f_c: 30 km/h is 97 Hz at 3.5 GHz and 778 Hz at 28 GHz.
    low = _median_spread(_fixed_speed("CDL-B", 30.0), seed=4)
    high = _median_spread(_fixed_speed("CDL-B", 30.0, carrier_hz=28e9), seed=4)
    assert high > 4.0 * low


def test_rician_k_factor_controls_time_variation() -> None:
    def spread(k_db: float) -> float:
        return _median_spread(replace(_fixed_speed("Rician", 100.0), k_factor_db=k_db), seed=5)

    # A strong line-of-sight path is a single Doppler tone: the spread collapses as K grows.
    assert spread(30.0) < 0.3 * spread(-10.0)


def test_port_order_is_pol_major_then_row_major() -> None:
    from distill.data.sionna_source import SionnaSource

    preset = replace(TINY, name="t2x4", rows=2, cols=4)
    source = SionnaSource(preset, preset.carrier_hz)
    positions = source.bs_array.ant_pos.cpu().numpy()[source.port_order.numpy()]
    grid = positions.reshape(preset.pols, preset.rows, preset.cols, 3)
    assert np.all(np.diff(grid[..., 2], axis=1) < 0)            # rows go down (z decreases)
    assert np.all(np.diff(grid[..., 1], axis=2) > 0)            # columns go right (y increases)
    np.testing.assert_allclose(grid[0], grid[1])                # the two pols are co-located
    second_pol = set(source.bs_array.ant_ind_pol2.cpu().numpy().tolist())
    assert set(source.port_order.numpy()[preset.rows * preset.cols:].tolist()) == second_pol


def test_doppler_estimator_on_known_spectra() -> None:
    times = np.arange(TINY.seq_len) * TINY.srs_period_s
    tone = np.exp(2j * np.pi * 700.0 * times)[None, :, None, None] * np.ones((1, 1, 2, 3))
    assert doppler_spread_hz(tone, TINY.srs_period_s)[0] < 1.0
    jakes = multipath_channels(TINY, 64, 100.0, n_paths=64, steps=20, seed=2)
    expected = max_doppler_hz(100.0, TINY.carrier_hz) / np.sqrt(2)   # Jakes rms spread
    measured = float(np.mean(doppler_spread_hz(jakes, TINY.srs_period_s)))
    assert measured == pytest.approx(expected, rel=0.1)
    with pytest.raises(ValueError, match="at least 3 time steps"):
        doppler_spread_hz(tone[:, :2], TINY.srs_period_s)
    with pytest.raises(ValueError, match="batch, time, antenna, rb"):
        doppler_spread_hz(tone[0], TINY.srs_period_s)


# -- determinism ----------------------------------------------------------------------------------

def test_same_seed_same_bytes_different_seed_different_data(test_set: ChannelSet) -> None:
    again = generate(TINY, "test", n=N, progress=False)
    assert again.content_hash() == test_set.content_hash()
    assert again.h.tobytes() == test_set.h.tobytes()
    other = generate(TINY, "test", n=N, seed=test_set.meta["seed"] + 1, progress=False)
    assert other.content_hash() != test_set.content_hash()
    assert not np.allclose(other.h, test_set.h)
    assert other.noise_seed != test_set.noise_seed


def test_val_differs_from_train_and_restores_caller_rng() -> None:
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train = generate(TINY, "train", n=3, progress=False)
    assert torch.equal(torch.rand(3), expected)                 # generation left torch's RNG alone
    val = generate(TINY, "val", n=3, progress=False)
    assert train.meta["seed"] != val.meta["seed"]
    assert not np.allclose(train.h, val.h)


# -- cache ----------------------------------------------------------------------------------------

def test_cache_is_reused_and_regenerated_on_recipe_mismatch(tmp_path: Path) -> None:
    first = load_or_generate(TINY, "heldout-speed", tmp_path, n=3, progress=False)
    directory = tmp_path / "tiny" / "heldout-speed"
    assert first.meta["content_hash"] == first.content_hash()
    mtime = (directory / "h.npy").stat().st_mtime_ns

    reused = load_or_generate(TINY, "heldout-speed", tmp_path, n=3, progress=False)
    assert (directory / "h.npy").stat().st_mtime_ns == mtime
    assert reused.meta["content_hash"] == first.meta["content_hash"]

    bigger = load_or_generate(TINY, "heldout-speed", tmp_path, n=4, progress=False)
    assert len(bigger) == 4                                     # n mismatch -> regenerated
    assert bigger.meta["content_hash"] != first.meta["content_hash"]

    meta = json.loads((directory / "meta.json").read_text())
    meta["sionna_version"] = "0.0.0"                            # stale generator -> regenerated
    (directory / "meta.json").write_text(json.dumps(meta))
    fresh = load_or_generate(TINY, "heldout-speed", tmp_path, n=4, progress=False)
    assert fresh.meta["sionna_version"] != "0.0.0"
    assert fresh.meta["content_hash"] == bigger.meta["content_hash"]
    assert not (tmp_path / "tiny" / "heldout-speed.tmp").exists()


# -- bad configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "message"), [
    (lambda: generate(TINY, "bogus", n=2), "unknown split 'bogus'"),
    (lambda: generate(TINY, "test", n=0), "n must be >= 1"),
    (lambda: generate(TINY, "test", n=2, k_factor_db=3.0), "only applies to the 'rician'"),
    (lambda: Recipe("x", ("CDL-Z",), (10.0, 20.0), (5.0, 5.0), 3.5e9, 10), "unknown scenarios"),
    (lambda: Recipe("x", ("UMa",), (-5.0, 20.0), (5.0, 5.0), 3.5e9, 10), "non-negative"),
    (lambda: Recipe("x", ("UMa",), (20.0, 10.0), (5.0, 5.0), 3.5e9, 10), "reversed"),
    (lambda: Recipe("x", ("UMa",), (10.0, 20.0), (5.0, 5.0), -1.0, 10), "carrier"),
    (lambda: generate_from_recipe(TINY, replace(recipe_for(TINY, "test"), steps=TINY.horizon),
                                  2, 0), "horizon 2 does not fit"),
    (lambda: generate_from_recipe(TINY, replace(recipe_for(TINY, "test"), steps=TINY.seq_len - 1),
                                  2, 0), "cannot hold history"),
    (lambda: replace(TINY, train_speed_kmh=(-1.0, 10.0)), "0 <= lo <= hi"),
])
def test_bad_config_fails_early_with_a_clear_message(make: Callable[[], object],
                                                     message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_splits_api() -> None:
    assert SPLITS == ("train", "val", "test", "heldout-speed", "heldout-profile", "heldout-28ghz")
    assert "rician" in ALL_SPLITS and "rician" not in SPLITS


# -- CLI ------------------------------------------------------------------------------------------

def test_cli_generate_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kdran.cli import main

    args = ["data", "generate", "--preset", "tiny", "--split", "rician", "--n", "2",
            "--root", str(tmp_path), "--quiet", "--k-factor-db", "6"]
    assert main(args) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("tiny/rician: shape [2, 10, 8, 12] hash ")
    assert line.endswith("(generated)")
    assert main(args) == 0
    assert capsys.readouterr().out.strip().endswith("(cached)")

    assert main(["data", "info", "--root", str(tmp_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["preset", "split", "n", "shape"]
    assert table[1].split()[:5] == ["tiny", "rician", "2", "2x10x8x12", "Rician"]

    assert main(["data", "generate", "--preset", "tiny", "--split", "test", "--k-factor-db", "3",
                 "--root", str(tmp_path)]) == 2
    assert "only applies to --split rician" in capsys.readouterr().err


def test_cli_module_imports_neither_torch_nor_sionna() -> None:
    import subprocess
    import sys

    code = ("import sys, distill.data.cli; "
            "heavy = {'torch', 'sionna'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
