"""Beam scores of a predicted channel over the ``csi.codebook`` 2-D DFT codebook, in torch.

``CodebookScores`` maps the first predicted step ``[batch, antenna, rb, 2]`` (real, imaginary) to
the wideband gain of every beam in dB, ``10 log10(sum_rb |w^H h|^2)``: the same quantity as
``csi.codebook.beam_gains`` (tested against it), differentiable and exportable to ONNX.
"""

from __future__ import annotations

import torch
from torch import nn

from csi.codebook import dft_codebook
from csi.presets import Preset

_GAIN_FLOOR = 1e-6  # linear; keeps the log finite for an all-zero prediction


class CodebookScores(nn.Module):
    """Beam gains in dB: ``[batch, antenna, rb, 2]`` -> ``[batch, n_beams]``."""

    w: torch.Tensor

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        book = torch.from_numpy(dft_codebook(preset))      # [n_beams, antenna] complex64
        w_re, w_im = book.real, book.imag
        # w^H h = (w_re h_re + w_im h_im) + j (w_re h_im - w_im h_re): one real matrix
        # [2 n_beams, 2 antenna] acting on [h_re; h_im], so the projection is a single MatMul.
        real = torch.cat([torch.cat([w_re, w_im], dim=1), torch.cat([-w_im, w_re], dim=1)], dim=0)
        self.register_buffer("w", real, persistent=False)
        self.n_beams, self.n_ant, self.n_rb = len(book), preset.n_ant, preset.n_rb

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # constant shapes (batch -1): a handful of ONNX nodes, no Shape chains
        stacked = h.permute(0, 3, 1, 2).reshape(-1, 2 * self.n_ant, self.n_rb)  # [b, 2 ant, rb]
        gain = (self.w @ stacked).pow(2).sum(dim=-1)                  # [batch, 2 n_beams]
        gain = gain.reshape(-1, 2, self.n_beams).sum(dim=1)           # |Re|^2 + |Im|^2
        return 10.0 * torch.log10(gain + _GAIN_FLOOR)
