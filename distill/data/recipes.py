"""Split recipes: which channels each dataset split holds, derived from a ``Preset``.

A ``Recipe`` is the complete, validated description of one split's random channel distribution:
scenarios, UE speed range (km/h), SRS estimation SNR range (dB), carrier (Hz), sequence length
(SRS steps), Rician K-factor (dB) and the delay-spread range (s) of the link-level profiles. The
standard splits come from ``recipe_for(preset, split)``; the simulator and tests may build custom
recipes directly. Everything here is plain Python (no torch, no Sionna), so the CLI can validate
a request instantly.

Split recipes (all numbers from the preset):

- ``train``: ``train_scenarios`` x ``train_speed_kmh``, SNR uniform in ``train_snr_db``.
- ``val``: the train distribution with a different seed.
- ``test``: train scenarios and speeds, SNR fixed at ``test_snr_db``.
- ``heldout-speed``: train scenarios at ``heldout_speed_kmh``.
- ``heldout-profile``: ``heldout_scenarios`` (profiles never seen in training) at train speeds.
- ``heldout-28ghz``: train scenarios at ``heldout_carrier_hz`` and ``heldout_carrier_speed_kmh``.
- ``rician`` (optional, not in ``SPLITS``): a factory floor, a line-of-sight Rician channel with a
  configurable K-factor (default ``DEFAULT_K_FACTOR_DB``), short delay spreads and AGV speeds.

Held-out and Rician splits are evaluation sets, so their SNR is ``test_snr_db`` like ``test``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Any

from csi.presets import ALL_SCENARIOS, Preset

SPLITS: tuple[str, ...] = ("train", "val", "test", "heldout-speed", "heldout-profile",
                           "heldout-28ghz")
RICIAN_SPLIT = "rician"
ALL_SPLITS: tuple[str, ...] = (*SPLITS, RICIAN_SPLIT)

RICIAN_SCENARIO = "Rician"
# Link-level (CDL) profiles: rms delay spread drawn uniformly per sequence in this range, between
# the "nominal" (100 ns) and "long" (300 ns) delay spreads of TR 38.901 Table 7.7.3-1.
CDL_DELAY_SPREAD_S: tuple[float, float] = (100e-9, 300e-9)
# Factory floor: TR 38.901 InF delay spreads are tens of ns; AGVs and forklifts move at 3-30 km/h.
FACTORY_DELAY_SPREAD_S: tuple[float, float] = (30e-9, 60e-9)
FACTORY_SPEED_KMH: tuple[float, float] = (3.0, 30.0)
DEFAULT_K_FACTOR_DB = 10.0


@dataclass(frozen=True)
class Recipe:
    """The random channel distribution of one split. Ranges are ``(lo, hi)``, drawn uniformly.

    ``steps`` is the sequence length in SRS periods; ``snr_db == (x, x)`` means a fixed SNR.
    ``k_factor_db`` only affects the ``Rician`` scenario, ``delay_spread_s`` only the link-level
    profiles (``CDL-*`` and ``Rician``); UMa/UMi draw their delay spreads from TR 38.901.
    """

    split: str
    scenarios: tuple[str, ...]
    speed_kmh: tuple[float, float]
    snr_db: tuple[float, float]
    carrier_hz: float
    steps: int
    k_factor_db: float = DEFAULT_K_FACTOR_DB
    delay_spread_s: tuple[float, float] = CDL_DELAY_SPREAD_S

    def __post_init__(self) -> None:
        problems = []
        if not self.scenarios:
            problems.append("no scenarios")
        unknown = [s for s in self.scenarios if s not in ALL_SCENARIOS]
        if unknown:
            problems.append(f"unknown scenarios {unknown}; known: {list(ALL_SCENARIOS)}")
        lo, hi = self.speed_kmh
        if lo < 0 or hi < 0:
            problems.append(f"speed must be non-negative, got {self.speed_kmh} km/h")
        elif hi < lo:
            problems.append(f"speed range {self.speed_kmh} km/h is reversed")
        if self.snr_db[1] < self.snr_db[0]:
            problems.append(f"SNR range {self.snr_db} dB is reversed")
        if self.carrier_hz <= 0:
            problems.append(f"carrier must be positive, got {self.carrier_hz} Hz")
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        ds_lo, ds_hi = self.delay_spread_s
        if not 0 < ds_lo <= ds_hi:
            problems.append(f"delay spread range {self.delay_spread_s} s must satisfy 0 < lo <= hi")
        if problems:
            raise ValueError(f"invalid recipe for split {self.split!r}: " + "; ".join(problems))

    def check_fits(self, preset: Preset) -> None:
        """Raise ``ValueError`` unless ``steps`` holds the preset's history + horizon."""
        if self.steps <= preset.horizon:
            raise ValueError(f"horizon {preset.horizon} does not fit a sequence of {self.steps} "
                             f"steps (split {self.split!r}); it needs history + horizon steps")
        if self.steps < preset.seq_len:
            raise ValueError(f"sequence of {self.steps} steps cannot hold history {preset.history} "
                             f"+ horizon {preset.horizon} of preset {preset.name!r} "
                             f"(split {self.split!r})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists), stored in a set's ``meta.json``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def check_split(split: str) -> None:
    """Raise a ``ValueError`` listing the known splits unless ``split`` is one of them."""
    if split not in ALL_SPLITS:
        raise ValueError(f"unknown split {split!r}; known splits: {list(ALL_SPLITS)}")


def recipe_for(preset: Preset, split: str, *, k_factor_db: float | None = None) -> Recipe:
    """The recipe of a standard ``split`` of ``preset`` (see the module docstring).

    ``k_factor_db`` sets the Rician K-factor and is only accepted for the ``rician`` split.
    """
    check_split(split)
    if k_factor_db is not None and split != RICIAN_SPLIT:
        raise ValueError(f"k_factor_db only applies to the {RICIAN_SPLIT!r} split, not {split!r}")
    test_snr = (preset.test_snr_db, preset.test_snr_db)
    base = Recipe(split=split, scenarios=preset.train_scenarios, speed_kmh=preset.train_speed_kmh,
                  snr_db=test_snr, carrier_hz=preset.carrier_hz, steps=preset.seq_len)
    if split in ("train", "val"):
        return replace(base, snr_db=preset.train_snr_db)
    if split == "test":
        return base
    if split == "heldout-speed":
        return replace(base, speed_kmh=preset.heldout_speed_kmh)
    if split == "heldout-profile":
        return replace(base, scenarios=preset.heldout_scenarios)
    if split == "heldout-28ghz":
        return replace(base, carrier_hz=preset.heldout_carrier_hz,
                       speed_kmh=preset.heldout_carrier_speed_kmh)
    return replace(base, scenarios=(RICIAN_SCENARIO,), speed_kmh=FACTORY_SPEED_KMH,
                   delay_spread_s=FACTORY_DELAY_SPREAD_S,
                   k_factor_db=DEFAULT_K_FACTOR_DB if k_factor_db is None else k_factor_db)


def default_size(preset: Preset, split: str) -> int:
    """Number of sequences of ``split`` at ``preset``: n_train, n_val, n_test or n_heldout."""
    check_split(split)
    return {"train": preset.n_train, "val": preset.n_val, "test": preset.n_test}.get(
        split, preset.n_heldout)


def default_seed(preset: Preset, split: str) -> int:
    """The seed of ``split``: the preset seed mixed with the split name, so every split differs.

    Stable across Python versions and processes (sha256, not ``hash()``); fits in 32 bits.
    """
    digest = hashlib.sha256(f"{preset.seed}/{split}".encode()).digest()
    return int.from_bytes(digest[:4], "little")
