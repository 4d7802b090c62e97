"""Beam scores of a predicted channel over the ``csi.codebook`` 2-D DFT codebook, in torch.

``CodebookScores`` maps the first predicted step ``[batch, antenna, rb, 2]`` (real, imaginary) to
the wideband gain of every beam in dB, ``10 log10(sum_rb |w^H h|^2)``: the same quantity as
``csi.codebook.beam_gains`` (tested against it), differentiable and exportable to ONNX.

The codebook's structure does most of the work instead of one ``[n_beams, antenna]`` projection
(3.1 MFLOP at std, a quarter of the student). A beam is a direction ``s`` on both polarisations
with co-phase ``c`` on the second, ``w = [s, c s] / sqrt(2)``, so with ``u_p = s^H h_p`` per
polarisation ``p`` (``[rb]``), its gain is

    sum_rb |w^H h|^2 = (P_0 + P_1) / 2 + Re(c) Re Z + Im(c) Im Z,
    P_p = sum_rb |u_p|^2,  Z = sum_rb conj(u_0) u_1.

One MatMul projects both polarisations on the directions (``[2 n_dir, 2 n_el]``, 0.8 MFLOP at
std), the ``sum_rb`` products of every pair of real/imaginary components give ``P`` and ``Z``,
and one constant ``[n_phase, K^2]`` matrix combines them into each co-phase's gain.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from csi.codebook import CO_PHASES, spatial_codebook
from csi.presets import Preset

_GAIN_FLOOR = 1e-6  # linear; keeps the log finite for an all-zero prediction
_DB_PER_NEPER_POWER = 10.0 / math.log(10.0)   # 10 log10(g) = ln(g) * 10 / ln 10: one Mul in ONNX


def _combine_matrix(pols: int) -> torch.Tensor:
    """``[n_phase, K * K]`` float32, ``K = 2 * pols`` components ``(pol, re/im)``: row ``k`` maps
    the flattened ``sum_rb`` products of component pairs to the gain of co-phase ``k``."""
    k = 2 * pols
    if pols == 1:                                    # single polarisation: |u|^2, no co-phase
        combine = np.zeros((1, k, k))
        combine[0, 0, 0] = combine[0, 1, 1] = 1.0
        return torch.from_numpy(combine.reshape(1, -1)).float()
    combine = np.zeros((len(CO_PHASES), k, k))
    for phase, c in enumerate(CO_PHASES):   # components: 0 Re u0, 1 Im u0, 2 Re u1, 3 Im u1
        combine[phase, range(k), range(k)] = 0.5     # (P_0 + P_1) / 2
        combine[phase, 0, 2] = combine[phase, 1, 3] = c.real          # Re Z = u0r u1r + u0i u1i
        combine[phase, 0, 3], combine[phase, 1, 2] = c.imag, -c.imag  # Im Z = u0r u1i - u0i u1r
    return torch.from_numpy(combine.reshape(len(CO_PHASES), -1)).float()


class CodebookScores(nn.Module):
    """Beam gains in dB: ``[batch, antenna, rb, 2]`` -> ``[batch, n_beams]`` (beam index
    ``direction * n_phase + phase``, as ``csi.codebook.dft_codebook``)."""

    w: torch.Tensor
    combine: torch.Tensor

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        spatial = torch.from_numpy(spatial_codebook(preset))     # [n_dir, n_el] complex128
        s_re, s_im = spatial.real.float(), spatial.imag.float()
        # s^H h = (s_re h_re + s_im h_im) + j (s_re h_im - s_im h_re): one real matrix
        # [2 n_dir, 2 n_el] acting on [h_re; h_im] of one polarisation.
        real = torch.cat([torch.cat([s_re, s_im], dim=1), torch.cat([-s_im, s_re], dim=1)], dim=0)
        self.register_buffer("w", real, persistent=False)
        self.register_buffer("combine", _combine_matrix(preset.pols), persistent=False)
        self.pols, self.n_el, self.n_rb = preset.pols, preset.rows * preset.cols, preset.n_rb
        self.n_dir = len(spatial)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # constant shapes (batch -1): a handful of ONNX nodes, no Shape chains
        k = 2 * self.pols
        x = h.reshape(-1, self.pols, self.n_el, self.n_rb, 2).permute(0, 1, 4, 2, 3)
        u = self.w @ x.reshape(-1, self.pols, 2 * self.n_el, self.n_rb)   # [b, pol, 2 n_dir, rb]
        # components (pol, c) against components: reshapes, not a transpose (same memory order)
        pairs = (u.reshape(-1, k, 1, self.n_dir, self.n_rb)
                 * u.reshape(-1, 1, k, self.n_dir, self.n_rb)).sum(dim=-1)  # [b, K, K, n_dir]
        gain = self.combine @ pairs.reshape(-1, k * k, self.n_dir)         # [b, n_phase, n_dir]
        gain = gain.transpose(1, 2).reshape(-1, self.n_dir * len(self.combine))
        return torch.log(gain + _GAIN_FLOOR) * _DB_PER_NEPER_POWER
