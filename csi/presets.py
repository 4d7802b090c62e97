"""Task presets: the geometry, timing and data recipe of one prediction task.

A preset fixes everything a model depends on (array, bandwidth, history/horizon lengths) and the
data recipe (scenarios, speeds, noise, split sizes). Presets are frozen: a model card cites the
preset by name and the data by content hash, so a preset never changes meaning silently.

Presets:
- ``tiny``: CI scale, seconds on a laptop core. Small array (2x2 dual-pol = 8 ports), 12 RBs.
- ``demo``: the embedded closed-loop demo; std geometry, small data, distills in minutes.
- ``std``: the standard task of DESIGN.md section 4 (4x4 dual-pol UPA = 32 ports, 48 RBs,
  16 past -> 4 future SRS occasions every 0.5 ms at 3.5 GHz). CPU: minutes to tens of minutes.
- ``full``: std geometry with WiFo-scale data and teacher, for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

TRAIN_SCENARIOS: tuple[str, ...] = ("UMa", "UMi", "CDL-A", "CDL-B", "CDL-C")
HELDOUT_SCENARIOS: tuple[str, ...] = ("CDL-D", "CDL-E")
ALL_SCENARIOS: tuple[str, ...] = TRAIN_SCENARIOS + HELDOUT_SCENARIOS + ("Rician",)


@dataclass(frozen=True)
class Preset:
    """One prediction task. Units are in the field names (``_hz``, ``_s``, ``_kmh``, ``_db``).

    The channel tensor of this task is complex64 ``[batch, time, antenna, rb]`` with
    ``time = history + horizon``, ``antenna = n_ant`` (BS ports, UE has one antenna) and
    ``rb = n_rb`` (one complex value per resource block, at the RB's centre subcarrier).
    """

    name: str
    # -- array: UPA of rows x cols elements, each dual-polarised (pols = 2) -> n_ant ports
    rows: int
    cols: int
    pols: int
    # -- frequency grid
    n_rb: int
    carrier_hz: float
    subcarrier_spacing_hz: float
    # -- time grid: one step = one SRS occasion
    srs_period_s: float
    history: int
    horizon: int
    # -- data recipe
    train_scenarios: tuple[str, ...]
    heldout_scenarios: tuple[str, ...]
    train_speed_kmh: tuple[float, float]
    heldout_speed_kmh: tuple[float, float]
    train_snr_db: tuple[float, float]
    test_snr_db: float
    heldout_carrier_hz: float
    heldout_carrier_speed_kmh: tuple[float, float]
    n_train: int
    n_val: int
    n_test: int
    n_heldout: int
    seed: int = 2026
    speed_bins_kmh: tuple[float, ...] = field(default=(10.0, 40.0, 70.0, 100.0))

    def __post_init__(self) -> None:
        problems = []
        if self.history < 2:
            problems.append(f"history must be >= 2 steps, got {self.history}")
        if self.horizon < 1:
            problems.append(f"horizon must be >= 1 step, got {self.horizon}")
        if min(self.rows, self.cols, self.pols, self.n_rb) < 1:
            problems.append("rows, cols, pols and n_rb must be positive")
        if self.pols not in (1, 2):
            problems.append(f"pols must be 1 or 2, got {self.pols}")
        speeds = (self.train_speed_kmh, self.heldout_speed_kmh, self.heldout_carrier_speed_kmh)
        for lo, hi in speeds:
            if lo < 0 or hi < lo:
                problems.append(f"speed range ({lo}, {hi}) km/h must satisfy 0 <= lo <= hi")
        if self.train_snr_db[1] < self.train_snr_db[0]:
            problems.append(f"train SNR range {self.train_snr_db} dB is reversed")
        unknown = set(self.train_scenarios + self.heldout_scenarios) - set(ALL_SCENARIOS)
        if unknown:
            problems.append(f"unknown scenarios {sorted(unknown)}; known: {list(ALL_SCENARIOS)}")
        if problems:
            raise ValueError(f"invalid preset {self.name!r}: " + "; ".join(problems))

    @property
    def n_ant(self) -> int:
        """BS ports: rows x cols x pols."""
        return self.rows * self.cols * self.pols

    @property
    def seq_len(self) -> int:
        """Steps per training sequence: history + horizon."""
        return self.history + self.horizon

    @property
    def rb_bandwidth_hz(self) -> float:
        """One RB = 12 subcarriers."""
        return 12 * self.subcarrier_spacing_hz

    @property
    def n_beams(self) -> int:
        """Size of the 2-D DFT codebook (one beam per oversampled spatial direction x pol)."""
        from csi.codebook import codebook_size

        return codebook_size(self)

    def speed_bins(self) -> list[tuple[float, float]]:
        """Consecutive speed bins [(lo, hi), ...] in km/h used by the accuracy benchmark."""
        edges = self.speed_bins_kmh
        return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


TINY = Preset(
    name="tiny",
    rows=2,
    cols=2,
    pols=2,
    n_rb=12,
    carrier_hz=3.5e9,
    subcarrier_spacing_hz=30e3,
    srs_period_s=0.5e-3,
    history=8,
    horizon=2,
    train_scenarios=("UMa", "CDL-A", "CDL-C"),
    heldout_scenarios=("CDL-E",),
    train_speed_kmh=(10.0, 100.0),
    heldout_speed_kmh=(120.0, 300.0),
    train_snr_db=(5.0, 20.0),
    test_snr_db=18.0,
    heldout_carrier_hz=28e9,
    heldout_carrier_speed_kmh=(3.0, 30.0),
    n_train=384,
    n_val=64,
    n_test=128,
    n_heldout=64,
)

STD = Preset(
    name="std",
    rows=4,
    cols=4,
    pols=2,
    n_rb=48,
    carrier_hz=3.5e9,
    subcarrier_spacing_hz=30e3,
    srs_period_s=0.5e-3,
    history=16,
    horizon=4,
    train_scenarios=TRAIN_SCENARIOS,
    heldout_scenarios=HELDOUT_SCENARIOS,
    train_speed_kmh=(10.0, 100.0),
    heldout_speed_kmh=(120.0, 300.0),
    train_snr_db=(5.0, 20.0),
    test_snr_db=18.0,
    heldout_carrier_hz=28e9,
    heldout_carrier_speed_kmh=(3.0, 30.0),
    n_train=8000,
    n_val=500,
    n_test=1000,
    n_heldout=500,
)

DEMO = replace(STD, name="demo", n_train=1500, n_val=200, n_test=300, n_heldout=200)

FULL = replace(STD, name="full", n_train=100_000, n_val=5000, n_test=10_000, n_heldout=5000)

PRESETS: dict[str, Preset] = {p.name: p for p in (TINY, DEMO, STD, FULL)}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``; a clear ``ValueError`` lists the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}") from None
