"""Channel sequences from Sionna's TR 38.901 models, in the kdran layout.

``SionnaSource`` holds the antenna arrays and frequency grid of one preset at one carrier and turns
a batch of per-sequence draws into complex64 ``[batch, steps, antenna, rb]`` clean channels:

- BS: a ``rows x cols`` UPA of cross-polarised (+/-45 degree) elements with the TR 38.901 element
  pattern, half-wavelength spacing -> ``preset.n_ant`` ports, permuted from Sionna's port order
  (polarisation-major, then column-major) to the ``csi.layout`` order (polarisation-major, then
  row-major; row 0 is the top row, column 0 the leftmost). The permutation is derived from the
  element positions Sionna reports, not assumed.
- UE: one vertically polarised omnidirectional antenna; uplink (UE transmits the SRS, BS receives).
- Frequency: one sample per RB at its centre subcarrier (subcarrier 6 of 12) of ``n_rb`` RBs of
  12 subcarriers at ``subcarrier_spacing_hz``, baseband frequencies centred on the carrier.
- Time: ``steps`` samples one SRS period apart (Sionna sampling frequency ``1 / srs_period_s``);
  the UE moves at a constant horizontal velocity, which Sionna turns into per-ray Doppler.

Scenarios:

- ``UMa`` / ``UMi``: TR 38.901 system-level models, NLoS forced, outdoor UEs, no path loss or
  shadow fading (sequences are power-normalised anyway); UE drops and orientations from Sionna's
  single-sector topology generator, the UE velocity from the draws.
- ``CDL-A`` ... ``CDL-E``: TR 38.901 link-level profiles scaled to the drawn rms delay spread, with
  the BS and UE rotated by the drawn yaw angles so that the profile's fixed angles are seen from
  random directions within the BS sector (the angular translation of TR 38.901 section 7.7.5.1).
- ``Rician``: the line-of-sight CDL-D profile with its K-factor set to the recipe's
  (TR 38.901 section 7.7.6), a factory-floor Rician channel.

Randomness inside Sionna comes from ``sionna.phy.config.seed``, set per batch by the caller through
``sionna_seed`` (the caller's global torch RNG states are restored afterwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from sionna.phy import config
from sionna.phy.channel import (
    cir_to_ofdm_channel,
    gen_single_sector_topology,
    subcarrier_frequencies,
)
from sionna.phy.channel.tr38901 import CDL, PanelArray, SystemLevelChannel, UMa, UMi

from csi.layout import CHANNEL_DTYPE
from csi.presets import Preset
from distill.data.draws import Draws
from distill.data.recipes import RICIAN_SCENARIO

SUBCARRIERS_PER_RB = 12
RB_CENTRE_SUBCARRIER = 6
_SYSTEM_LEVEL = {"UMa": UMa, "UMi": UMi}


@contextmanager
def sionna_seed(seed: int) -> Iterator[None]:
    """Seed every Sionna RNG with ``seed`` inside the block.

    Afterwards torch's global RNG states (CPU and CUDA) are as the caller left them and Sionna's
    seed setting is back to its previous value.
    """
    previous = config.seed
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        config.seed = seed
        try:
            yield
        finally:
            config.seed = previous


def layout_port_order(positions: np.ndarray, second_pol: np.ndarray, rows: int,
                      cols: int) -> np.ndarray:
    """Indices ``perm`` with ``h_layout[..., k, :] = h_sionna[..., perm[k], :]``.

    ``positions`` are the ``[ports, 3]`` element positions in the array's local frame (y
    horizontal, z vertical), ``second_pol`` the port indices of the second polarisation. The layout
    index of a port is ``pol * rows * cols + row * cols + col`` with row 0 at the top (largest z)
    and column 0 at the left (smallest y).
    """
    pols = 2 if len(second_pol) else 1
    col = np.unique(np.round(positions[:, 1], 9), return_inverse=True)[1]
    row = np.unique(np.round(-positions[:, 2], 9), return_inverse=True)[1]
    pol = np.isin(np.arange(len(positions)), second_pol).astype(int)
    if col.max() + 1 != cols or row.max() + 1 != rows or len(positions) != rows * cols * pols:
        raise RuntimeError(f"Sionna array geometry ({len(positions)} ports) does not match a "
                           f"{rows}x{cols}x{pols} UPA")
    index = pol * rows * cols + row * cols + col
    if len(np.unique(index)) != len(index):
        raise RuntimeError("two Sionna ports map to the same layout position")
    return np.argsort(index)


class _RicianCDL(CDL):
    """CDL-D with its Rician K-factor replaced (TR 38.901 section 7.7.6 K-factor scaling)."""

    def __init__(self, k_factor_db: float, **kwargs: object) -> None:
        super().__init__(model="D", **kwargs)
        self._k_linear = float(10.0 ** (k_factor_db / 10.0))

    def _get_k_factor(self, batch_size: int) -> torch.Tensor:
        return torch.full((batch_size, 1, 1), self._k_linear, dtype=self.dtype,
                          device=self.device)


class SionnaSource:
    """Sionna channel generator for one preset geometry at one carrier (see module docstring)."""

    def __init__(self, preset: Preset, carrier_hz: float) -> None:
        self.preset = preset
        self.carrier_hz = carrier_hz
        self.bs_array = PanelArray(
            num_rows_per_panel=preset.rows, num_cols_per_panel=preset.cols,
            polarization="dual" if preset.pols == 2 else "single",
            polarization_type="cross" if preset.pols == 2 else "V",
            antenna_pattern="38.901", carrier_frequency=carrier_hz)
        self.ut_array = PanelArray(
            num_rows_per_panel=1, num_cols_per_panel=1, polarization="single",
            polarization_type="V", antenna_pattern="omni", carrier_frequency=carrier_hz)
        second_pol = (self.bs_array.ant_ind_pol2.cpu().numpy() if preset.pols == 2
                      else np.array([], dtype=int))
        self.port_order = torch.as_tensor(layout_port_order(
            self.bs_array.ant_pos.cpu().numpy(), second_pol, preset.rows, preset.cols))
        n_sc = preset.n_rb * SUBCARRIERS_PER_RB
        self.frequencies = subcarrier_frequencies(
            n_sc, preset.subcarrier_spacing_hz)[RB_CENTRE_SUBCARRIER::SUBCARRIERS_PER_RB]
        self._system_models: dict[str, SystemLevelChannel] = {}

    def channels(self, scenario: str, draws: Draws, steps: int,
                 k_factor_db: float) -> np.ndarray:
        """Clean channels ``[batch, steps, antenna, rb]`` complex64 (not power-normalised).

        Seed Sionna (``sionna_seed``) around this call for reproducible output.
        """
        if scenario in _SYSTEM_LEVEL:
            a, tau = self._system_level_cir(scenario, draws, steps)
        elif scenario.startswith("CDL-") or scenario == RICIAN_SCENARIO:
            a, tau = self._link_level_cir(scenario, draws, steps, k_factor_db)
        else:
            raise ValueError(f"scenario {scenario!r} has no Sionna model")
        # a: [b, rx=1, bs_ports, tx=1, ut_ant=1, paths, steps] -> h: [..., steps, rb]
        h = cir_to_ofdm_channel(self.frequencies, a, tau)[:, 0, :, 0, 0]
        h = h[:, self.port_order].permute(0, 2, 1, 3)
        return h.cpu().numpy().astype(CHANNEL_DTYPE)

    def _velocities(self, draws: Draws) -> torch.Tensor:
        """UE velocity vectors ``[batch, 3]`` in m/s, horizontal."""
        speed = draws.speed_kmh.astype(np.float64) / 3.6
        v = np.stack([speed * np.cos(draws.heading_rad), speed * np.sin(draws.heading_rad),
                      np.zeros_like(speed)], axis=-1)
        return torch.as_tensor(v, dtype=config.dtype, device=config.device)

    def _sampling_hz(self) -> float:
        return 1.0 / self.preset.srs_period_s

    def _system_level_cir(self, scenario: str, draws: Draws,
                          steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        model = self._system_models.get(scenario)
        if model is None:
            model = _SYSTEM_LEVEL[scenario](
                carrier_frequency=self.carrier_hz, o2i_model="low", ut_array=self.ut_array,
                bs_array=self.bs_array, direction="uplink", enable_pathloss=False,
                enable_shadow_fading=False)
            self._system_models[scenario] = model
        ut_loc, bs_loc, ut_orient, bs_orient, _, in_state = gen_single_sector_topology(
            len(draws), 1, scenario.lower(), indoor_probability=0.0)
        model.reset_topology()  # fresh state per batch: allows a new batch size, carries nothing
        model.set_topology(ut_loc, bs_loc, ut_orient, bs_orient,
                           self._velocities(draws)[:, None, :], in_state, los=False)
        a, tau = model(steps, self._sampling_hz())
        return a, tau

    def _link_level_cir(self, scenario: str, draws: Draws, steps: int,
                        k_factor_db: float) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = np.zeros(len(draws))
        kwargs: dict[str, object] = dict(
            delay_spread=1.0,  # delays in units of the rms delay spread, scaled per sequence below
            carrier_frequency=self.carrier_hz, ut_array=self.ut_array, bs_array=self.bs_array,
            direction="uplink", ut_velocity=self._velocities(draws),
            ut_orientation=torch.as_tensor(np.stack([draws.ut_yaw_rad, zeros, zeros], -1),
                                           dtype=config.dtype),
            bs_orientation=torch.as_tensor(np.stack([draws.bs_yaw_rad, zeros, zeros], -1),
                                           dtype=config.dtype))
        model = (_RicianCDL(k_factor_db, **kwargs) if scenario == RICIAN_SCENARIO
                 else CDL(model=scenario.removeprefix("CDL-"), **kwargs))
        a, tau = model(len(draws), steps, self._sampling_hz())
        spread = torch.as_tensor(draws.delay_spread_s, dtype=tau.dtype, device=tau.device)
        return a, tau * spread[:, None, None, None]
