"""Robustness sweeps: seeded re-noising at the requested SNR, NMSE vs SNR and speed, CLI outputs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from csi.dataset import ChannelSet
from csi.presets import TINY
from csi.synthetic import synthetic_set
from distill.robustness import (
    SnrRow,
    SpeedRow,
    first_n,
    format_tables,
    parse_snr_list,
    predictor_factory,
    renoised,
    sweep_snr,
    sweep_speed,
)
from kdran.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def test_set() -> ChannelSet:
    return synthetic_set(TINY, 64, speed_range_kmh=(10.0, 100.0), snr_db=18.0, n_paths=4, seed=3)


def measured_snr_db(data: ChannelSet) -> float:
    """SNR (dB) of ``observed()`` measured from its noise: mean |h|^2 over mean |noise|^2."""
    h = np.asarray(data.h)
    noise = data.observed() - h
    return float(10.0 * np.log10(np.mean(np.abs(h) ** 2) / np.mean(np.abs(noise) ** 2)))


@pytest.mark.parametrize("snr_db", [0.0, 12.5, 30.0])
def test_renoising_hits_the_requested_snr(test_set: ChannelSet, snr_db: float) -> None:
    noisy = renoised(test_set, snr_db)
    assert measured_snr_db(noisy) == pytest.approx(snr_db, abs=0.05)
    assert np.all(noisy.snr_db == np.float32(snr_db))
    assert np.all(test_set.snr_db == np.float32(18.0))       # the source set is untouched
    assert noisy.h is test_set.h                              # clean channels shared, not copied


def test_renoising_is_reproducible_and_seeded(test_set: ChannelSet) -> None:
    first = renoised(test_set, 10.0).observed()
    np.testing.assert_array_equal(first, renoised(test_set, 10.0).observed())
    assert not np.array_equal(first, renoised(test_set, 10.0, seed=99).observed())
    # The set's own seed at its native SNR reproduces the set's own noisy estimate.
    np.testing.assert_array_equal(renoised(test_set, 18.0).observed(), test_set.observed())
    with pytest.raises(ValueError, match="finite"):
        renoised(test_set, float("nan"))


def test_ar_improves_with_snr(test_set: ChannelSet) -> None:
    snrs = [0.0, 10.0, 20.0, 30.0]
    rows = sweep_snr(predictor_factory([], TINY), test_set, TINY, snrs)
    assert {(r.predictor, r.snr_db) for r in rows} == {
        (p, s) for p in ("outdated", "ar", "kalman", "ar_ad") for s in snrs}
    assert all(r.n == len(test_set) and r.set == "test" for r in rows)
    ar = [r.nmse_db for r in sorted((r for r in rows if r.predictor == "ar"),
                                    key=lambda r: r.snr_db)]
    assert all(later < earlier - 1.0 for earlier, later in itertools.pairwise(ar))
    at_30 = {r.predictor: r.nmse_db for r in rows if r.snr_db == 30.0}
    assert at_30["ar"] < at_30["outdated"]


def test_speed_sweep_bins_both_sets_up_to_300_kmh(test_set: ChannelSet) -> None:
    heldout = synthetic_set(TINY, 48, speed_range_kmh=(120.0, 300.0), snr_db=18.0, n_paths=4,
                            seed=4)
    rows = sweep_speed(predictor_factory([], TINY), {"test": test_set, "heldout-speed": heldout},
                       TINY)
    for name, data in (("test", test_set), ("heldout-speed", heldout)):
        mine = [r for r in rows if r.set == name]
        assert sum(r.n for r in mine if r.predictor == "ar") >= len(data)
        assert all(float(np.min(data.speed_kmh)) - 1 <= r.speed_kmh
                   <= float(np.max(data.speed_kmh)) + 1 for r in mine)
    outdated = sorted((r.speed_kmh, r.nmse_db) for r in rows if r.predictor == "outdated")
    assert outdated[-1][0] > 240.0 and outdated[-1][1] > outdated[0][1]
    assert all(r.snr_db == 18.0 for r in rows)


def test_tables_and_parsing() -> None:
    snr_rows = [SnrRow("ar", "test", 0.0, 8, -3.0), SnrRow("ar", "test", 10.0, 8, -9.5)]
    speed_rows = [SpeedRow("ar", "test", "10-30", 20.0, 18.0, 8, -15.25)]
    table = format_tables(snr_rows, speed_rows)
    assert "0 dB" in table and "10 dB" in table and "-9.50" in table
    assert "test:10-30" in table and "-15.25" in table
    assert parse_snr_list("20, 0,10,10") == [0.0, 10.0, 20.0]
    for bad in ("", "a,b", "5,inf"):
        with pytest.raises(ValueError, match="--snr-db"):
            parse_snr_list(bad)


def test_first_n(test_set: ChannelSet) -> None:
    assert len(first_n(test_set, 10)) == 10
    assert first_n(test_set, None) is test_set and first_n(test_set, 1000) is test_set
    np.testing.assert_array_equal(first_n(test_set, 5).h, test_set.h[:5])
    with pytest.raises(ValueError, match="at least 1"):
        first_n(test_set, 0)


def test_cli_writes_table_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rob.json"
    code = main(["bench", "accuracy", "--robustness", "--preset", "tiny", "--data-root",
                 str(tmp_path / "data"), "--n", "12", "--snr-db", "0,20", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "NMSE (dB) vs SRS SNR" in printed and "heldout-speed:" in printed
    result = json.loads(out.read_text())
    assert result["preset"] == "tiny" and result["snr_db"] == [0.0, 20.0]
    assert result["n"] == {"test": 12, "heldout-speed": 12}
    assert {(r["predictor"], r["snr_db"]) for r in result["snr_rows"]} == {
        (p, s) for p in ("outdated", "ar", "kalman", "ar_ad") for s in (0.0, 20.0)}
    assert set(result["speed_rows"][0]) == {"predictor", "set", "speed_bin", "speed_kmh",
                                            "snr_db", "n", "nmse_db"}
    assert {r["set"] for r in result["speed_rows"]} == {"test", "heldout-speed"}
    assert out.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC
