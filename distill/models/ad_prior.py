"""A learned angle-delay predictor: the prior that teacher and student refine.

The channel is sparse in the angle-delay domain (``csi.angle_delay``): a few coefficients hold
the paths, the rest hold white noise of the same power as in the antenna/RB domain. This module
predicts every coefficient's future from its own noisy history with a *bank of learned complex
filters* mixed by *gates* that depend only on how that coefficient looks, which is what a
per-coefficient linear MMSE predictor does with known statistics (its filter depends on the
coefficient's SNR and Doppler spectrum):

- transform: history ``[b, t, antenna, rb, 2]`` -> coefficients ``z_k`` (``k`` = beam x delay,
  ``t`` complex values each), two constant real MatMuls (the unitary 2-D DFT over each
  polarisation's UPA, the inverse DFT over RBs);
- descriptors per coefficient, all invariant to the coefficient's phase: its power against the
  noise level (the ``noise_quantile`` of all coefficients' powers, via TopK), its normalised lag
  correlations ``sum_t z[t + l] conj(z[t])`` for ``l = 1..lags``, and the same two for the whole
  sequence (power-weighted over coefficients: the sequence's Doppler and SNR);
- gates: a two-layer MLP maps the descriptors to ``filters + 1`` real weights;
- forecast: ``sum_m g_m (W_m z_k)`` over the learned filters ``W_m`` (``[horizon, t]`` complex)
  plus ``g_0`` times a pooled AR forecast (``ArPrior`` fitted on the coefficients weighted by a
  learned soft SNR threshold, so the fit sees the paths, not the noise); back to antenna/RB.

Being complex-linear in ``z_k`` with phase-invariant gates, the predictor commutes with a common
phase rotation of the channel, as the task does. Shapes: rows ``[batch, 2 * history, antenna *
rb]`` (``ar_prior.series_rows``) -> forecast rows ``[batch, 2 * horizon, antenna * rb]``, the
``ArPrior`` interface, so a model swaps one for the other.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from csi.angle_delay import angle_matrix, delay_matrix
from distill.models.ar_prior import ArPrior

_EPS = 1e-9


def _complex_block(matrix: np.ndarray) -> torch.Tensor:
    """Complex ``M`` ``[n, m]`` -> real ``[[Re M, -Im M], [Im M, Re M]]`` ``[2n, 2m]`` acting on
    ``[Re x; Im x]``."""
    re, im = torch.from_numpy(matrix.real).float(), torch.from_numpy(matrix.imag).float()
    return torch.cat([torch.cat([re, -im], dim=1), torch.cat([im, re], dim=1)], dim=0)


def _right_block(matrix: np.ndarray) -> torch.Tensor:
    """Complex ``M`` ``[n, m]`` -> real ``[[Re M, Im M], [-Im M, Re M]]`` ``[2n, 2m]``: the row
    ``[Re y, Im y]`` times it is ``[Re (y M), Im (y M)]``."""
    return _complex_block(matrix.T).t().contiguous()


class AngleDelayPrior(nn.Module):
    """Learned per-coefficient angle-delay forecaster (see the module docstring).

    ``filters``: learned complex filters; ``hidden``: gate MLP width; ``lags``: lag correlations
    per descriptor; ``ar_order``: order of the pooled AR forecast among the filters.
    """

    angle: torch.Tensor
    delay: torch.Tensor
    angle_inv: torch.Tensor
    delay_inv: torch.Tensor

    def __init__(self, rows: int, cols: int, pols: int, n_rb: int, history: int, horizon: int,
                 filters: int = 8, hidden: int = 32, lags: int = 3, ar_order: int = 12,
                 noise_quantile: float = 0.1, neighbours: bool = False) -> None:
        super().__init__()
        self.grid = (pols, rows, cols, n_rb)
        self.neighbours = neighbours
        self.n_ant, self.n_rb = rows * cols * pols, n_rb
        self.history, self.horizon, self.filters, self.lags = history, horizon, filters, lags
        self.n_noise = max(1, round(noise_quantile * self.n_ant * n_rb))
        a = angle_matrix(rows, cols, pols)                        # [antenna, antenna]
        d = delay_matrix(n_rb)                                    # [rb, rb]
        self.register_buffer("angle", _complex_block(a), persistent=False)
        self.register_buffer("delay", _right_block(d.T), persistent=False)
        self.register_buffer("angle_inv", _complex_block(a.conj().T), persistent=False)
        self.register_buffer("delay_inv", _right_block(d.conj()), persistent=False)
        n_desc = 2 + 4 * lags + (2 if neighbours else 0)
        inputs = 2 if neighbours else 1                         # own history (+ neighbours')
        self.gate = nn.Sequential(nn.Linear(n_desc, hidden), nn.GELU(),
                                  nn.Linear(hidden, filters + 1))
        # filters start as "repeat the last value" (outdated CSI) spread over the bank, the AR
        # forecast gate at one: training starts from the pooled AR forecast
        w_re = torch.zeros(filters, horizon, inputs * history)
        w_re[:, :, history - 1] = 1.0 / filters
        self.w_re = nn.Parameter(w_re + 0.01 * torch.randn(filters, horizon, inputs * history))
        self.w_im = nn.Parameter(0.01 * torch.randn(filters, horizon, inputs * history))
        nn.init.zeros_(self.gate[2].weight)
        with torch.no_grad():
            self.gate[2].bias.copy_(torch.cat([torch.ones(1), torch.zeros(filters)]))
        self.ar = ArPrior(history, horizon, ar_order)
        self.fit_threshold = nn.Parameter(torch.tensor([2.0, 1.0]))   # log-SNR centre, slope

    # -- transforms: values [b, t, 2 * antenna, rb] (Re rows then Im rows) <-> coefficients
    def _to_coefficients(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``[b, 2t, antenna * rb]`` -> coefficients ``[b, 2, k, t]`` (Re, Im)."""
        t, a, r = int(rows.shape[1]) // 2, self.n_ant, self.n_rb
        x = rows.reshape(-1, 2, t, a, r).transpose(1, 2).reshape(-1, t, 2 * a, r)
        y = self.angle @ x                                        # [b, t, 2a, r]
        y = torch.cat([y[:, :, :a], y[:, :, a:]], dim=3)          # [b, t, a, 2r]: [Re | Im]
        z = y @ self.delay                                        # [b, t, a, 2r]
        return z.reshape(-1, t, a, 2, r).permute(0, 3, 2, 4, 1).reshape(-1, 2, a * r, t)

    def _to_rows(self, coef: torch.Tensor) -> torch.Tensor:
        """Coefficients ``[b, 2, k, h]`` -> forecast rows ``[b, 2h, antenna * rb]``, step-major
        (``Re`` then ``Im`` of step 1, then of step 2, ... as ``ArPrior``'s output)."""
        h, a, r = int(coef.shape[3]), self.n_ant, self.n_rb
        z = coef.reshape(-1, 2, a, r, h).permute(0, 4, 2, 1, 3).reshape(-1, h, a, 2 * r)
        y = z @ self.delay_inv                                    # [b, h, a, 2r]
        y = torch.cat([y[..., :r], y[..., r:]], dim=2)            # [b, h, 2a, r]
        x = self.angle_inv @ y                                    # [b, h, 2a, r]
        return x.reshape(-1, 2 * h, a * r)

    # -- descriptors
    def _lag_correlations(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """``[b, k, t]`` Re/Im -> ``[b, k, 2 * lags]`` unnormalised ``sum_t z[t+l] conj(z[t])``."""
        out = []
        for lag in range(1, self.lags + 1):
            a_re, a_im, b_re, b_im = re[..., lag:], im[..., lag:], re[..., :-lag], im[..., :-lag]
            out.append((a_re * b_re + a_im * b_im).sum(-1, keepdim=True))
            out.append((a_im * b_re - a_re * b_im).sum(-1, keepdim=True))
        return torch.cat(out, dim=-1)

    def descriptors(self, coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients ``[b, 2, k, t]`` -> (descriptors ``[b, k, 2 + 4 lags]``, log SNR
        ``[b, k]`` of each coefficient against the estimated noise)."""
        re, im = coef[:, 0], coef[:, 1]
        power = (re * re + im * im).mean(-1)                                   # [b, k]
        noise = torch.topk(power, self.n_noise, dim=1, largest=False).values.max(
            dim=1, keepdim=True).values                                         # [b, 1]
        snr = torch.log(power / (noise + _EPS) + _EPS)                          # [b, k]
        corr = self._lag_correlations(re, im)                                   # [b, k, 2L]
        energy = power[..., None] * self.history + _EPS
        pooled = corr.sum(1, keepdim=True) / energy.sum(1, keepdim=True)        # [b, 1, 2L]
        k = int(power.shape[1])
        seq = torch.cat([torch.log(noise + _EPS)[..., None].expand(-1, k, 1),
                         pooled.expand(-1, k, -1)], dim=-1)
        return torch.cat([snr[..., None], corr / energy, seq], dim=-1), snr

    def _aligned_neighbours(self, coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the neighbours say about each coefficient's history.

        A path leaks into the adjacent delay taps and beams and shows on both polarisations with
        the same time evolution, scaled by a complex factor. For each neighbour ``j`` of ``k``
        (other polarisation, delay +-1, beam +-1 along each array axis; cyclic, as the DFTs are)
        the least-squares factor ``rho = <z_k, z_j> / |z_j|^2`` aligns ``rho z_j`` to ``z_k``;
        the aligned copies are averaged with weights = their coherence ``|<z_k, z_j>|^2 /
        (|z_k|^2 |z_j|^2)``. Returns (average ``[b, 2, k, t]``, descriptors ``[b, k, 2]``: mean
        and max coherence)."""
        p, u, v, r = self.grid
        t = int(coef.shape[3])
        grid = coef.reshape(-1, 2, p, u, v, r, t)
        re, im = coef[:, 0], coef[:, 1]
        own = (re * re + im * im).sum(-1)                                      # [b, k]
        total = torch.zeros_like(coef)
        weights, coherences = torch.zeros_like(own), []
        for dim, shift in ((2, 1), (5, 1), (5, -1), (4, 1), (4, -1), (3, 1), (3, -1)):
            nb = torch.roll(grid, shift, dim).reshape(coef.shape)
            n_re, n_im = nb[:, 0], nb[:, 1]
            power = (n_re * n_re + n_im * n_im).sum(-1)                         # [b, k]
            c_re = (re * n_re + im * n_im).sum(-1)                              # <z_k, z_j>
            c_im = (im * n_re - re * n_im).sum(-1)
            coherence = (c_re * c_re + c_im * c_im) / (own * power + _EPS)
            rho_re, rho_im = c_re / (power + _EPS), c_im / (power + _EPS)
            aligned = torch.stack([rho_re[..., None] * n_re - rho_im[..., None] * n_im,
                                   rho_re[..., None] * n_im + rho_im[..., None] * n_re], dim=1)
            total = total + coherence[:, None, :, None] * aligned
            weights = weights + coherence
            coherences.append(coherence)
        stacked = torch.stack(coherences, dim=-1)                               # [b, k, 7]
        desc = torch.stack([stacked.mean(-1), stacked.max(-1).values], dim=-1)
        return total / (weights[:, None, :, None] + _EPS), desc

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``[b, 2 * history, antenna * rb]`` -> forecast rows ``[b, 2 * horizon, ...]``."""
        coef = self._to_coefficients(rows)                          # [b, 2, k, t]
        desc, snr = self.descriptors(coef)
        inputs = coef
        if self.neighbours:
            average, coherence = self._aligned_neighbours(coef)
            desc = torch.cat([desc, coherence], dim=-1)
            inputs = torch.cat([coef, average], dim=3)              # [b, 2, k, 2t]
        gates = self.gate(desc)                                     # [b, k, filters + 1]
        weight = torch.sigmoid(self.fit_threshold[1] * (snr - self.fit_threshold[0]))
        flat = coef.permute(0, 1, 3, 2).reshape(-1, 2 * self.history, int(coef.shape[2]))
        ar_rows = self.ar.forecast_weighted(flat, weight[:, None, :])   # [b, 2H, k]
        ar = ar_rows.reshape(-1, self.horizon, 2, int(coef.shape[2])).permute(0, 2, 3, 1)
        width = int(inputs.shape[3])
        z = inputs.transpose(1, 2).reshape(-1, int(coef.shape[2]), 2 * width)    # [b, k, 2n]
        w = torch.cat([torch.cat([self.w_re, -self.w_im], dim=2),
                       torch.cat([self.w_im, self.w_re], dim=2)], dim=1)  # [m, 2H, 2n]
        bank = z @ w.reshape(-1, 2 * width).t()                      # [b, k, m * 2H]
        bank = bank.reshape(-1, int(coef.shape[2]), self.filters, 2 * self.horizon)
        mixed = (gates[..., 1:, None] * bank).sum(2)                 # [b, k, 2H] (Re H, Im H)
        out = mixed.reshape(-1, int(coef.shape[2]), 2, self.horizon).transpose(1, 2)
        out = out + gates[:, None, :, :1] * ar                       # [b, 2, k, H]
        return self._to_rows(out)

    def forecast(self, history: torch.Tensor) -> torch.Tensor:
        """``[b, history, antenna, rb, 2]`` -> ``[b, horizon, antenna, rb, 2]``."""
        from distill.models.ar_prior import rows_to_future, series_rows

        return rows_to_future(self(series_rows(history)), self.n_ant, self.n_rb)
