"""A learned angle-delay predictor: the prior that teacher and student refine.

The channel is sparse in the angle-delay domain (``csi.angle_delay``): a few coefficients hold
the paths, the rest hold white noise of the same power as in the antenna/RB domain. This module
predicts every coefficient's future from its own noisy history with a *bank of learned complex
filters* mixed by *gates* that depend only on how that coefficient looks, which is what a
per-coefficient linear MMSE predictor does with known statistics (its filter depends on the
coefficient's SNR and Doppler spectrum):

- transform: history ``[b, t, antenna, rb, 2]`` -> coefficients ``z_k`` (``k`` = beam x delay,
  ``t`` complex values each), two constant batched MatMuls (the unitary 2-D DFT over each
  polarisation's UPA, the inverse DFT over RBs), with real and imaginary parts on their own axis
  so that no large tensor is transposed;
- selection (``keep``, the student): only the ``keep`` strongest coefficients (TopK of the
  history power) go on; the others are forecast as zero;
- descriptors per coefficient, all invariant to the coefficient's phase: its power against the
  noise level (the ``noise_quantile`` of all coefficients' powers, via TopK), its normalised lag
  correlations ``sum_t z[t + l] conj(z[t])`` for ``l = 1..lags``, and the same two for the whole
  sequence (power-weighted over coefficients: the sequence's Doppler and SNR);
- neighbours (``neighbours``): a path leaks into adjacent delay taps and beams and shows on both
  polarisations with the same time evolution, so each coefficient also gets its 7 neighbours'
  histories aligned to it by a least-squares complex factor and averaged by coherence: a second,
  independent look at the same trajectory (``_aligned_neighbours``);
- gates: a two-layer MLP maps the descriptors to ``filters + 1`` real weights;
- forecast: ``sum_m g_m (W_m z_k)`` over the learned filters ``W_m`` (``[horizon, t]`` complex,
  ``[horizon, 2t]`` with the neighbours' average as a second input)
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
from distill.models.ar_prior import ArPrior, rows_to_future, series_rows

_EPS = 1e-9


def _left(matrix: np.ndarray) -> torch.Tensor:
    """Complex ``M`` ``[n, n]`` -> real ``[2n, n]`` = ``[Re M; Im M]`` (see ``_apply_left``)."""
    return torch.from_numpy(np.concatenate([matrix.real, matrix.imag])).float()


def _right(matrix: np.ndarray) -> torch.Tensor:
    """Complex ``M`` ``[n, n]`` -> real ``[n, 2n]`` = ``[Re M, Im M]`` (see ``_apply_right``)."""
    return torch.from_numpy(np.concatenate([matrix.real, matrix.imag], axis=1)).float()


def _apply_left(stacked: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``M x`` for complex ``x`` ``[b, 2, t, n, m]`` (Re, Im on axis 1) and ``stacked`` =
    ``_left(M)``: one MatMul gives ``Re M x_p`` and ``Im M x_p`` for both parts ``p``."""
    n = int(x.shape[3])
    p = stacked @ x                                               # [b, 2, t, 2n, m]
    re = p[:, 0, :, :n] - p[:, 1, :, n:]
    im = p[:, 1, :, :n] + p[:, 0, :, n:]
    return torch.stack([re, im], dim=1)


def _apply_right(x: torch.Tensor, stacked: torch.Tensor) -> torch.Tensor:
    """``x M`` for complex ``x`` ``[b, 2, t, n, m]`` and ``stacked`` = ``_right(M)``."""
    m = int(x.shape[4])
    p = x @ stacked                                               # [b, 2, t, n, 2m]
    re = p[:, 0, ..., :m] - p[:, 1, ..., m:]
    im = p[:, 1, ..., :m] + p[:, 0, ..., m:]
    return torch.stack([re, im], dim=1)


def _neighbour_index(pols: int, rows: int, cols: int, n_rb: int) -> torch.Tensor:
    """``[k, 7]`` int64: for every coefficient (index ``((pol * rows + u) * cols + v) * n_rb +
    delay``) its neighbours: the other polarisation, delay -1/+1, beam -1/+1 along the columns
    and along the rows, all cyclic (the DFT grids are)."""
    grid = torch.arange(pols * rows * cols * n_rb).reshape(pols, rows, cols, n_rb)
    moves = ((0, 1), (3, 1), (3, -1), (2, 1), (2, -1), (1, 1), (1, -1))
    return torch.stack([torch.roll(grid, shift, dim).reshape(-1) for dim, shift in moves], dim=1)


class AngleDelayPrior(nn.Module):
    """Learned per-coefficient angle-delay forecaster (see the module docstring).

    ``filters``: learned complex filters; ``hidden``: gate MLP width; ``lags``: lag correlations
    per descriptor; ``ar_order``: order of the pooled AR forecast among the filters.
    """

    angle: torch.Tensor
    delay: torch.Tensor
    angle_inv: torch.Tensor
    delay_inv: torch.Tensor
    neighbour_index: torch.Tensor

    def __init__(self, rows: int, cols: int, pols: int, n_rb: int, history: int, horizon: int,
                 filters: int = 8, hidden: int = 32, lags: int = 3, ar_order: int = 12,
                 noise_quantile: float = 0.1, neighbours: bool = False,
                 keep: int | None = None) -> None:
        super().__init__()
        n_coef = rows * cols * pols * n_rb
        if keep is not None and not 0 < keep <= n_coef:
            raise ValueError(f"keep must be in 1..{n_coef} coefficients, got {keep}")
        self.keep = keep
        self.neighbours = neighbours
        self.n_ant, self.n_rb = rows * cols * pols, n_rb
        self.history, self.horizon, self.filters, self.lags = history, horizon, filters, lags
        self.n_noise = max(1, round(noise_quantile * self.n_ant * n_rb))
        a = angle_matrix(rows, cols, pols)                        # [antenna, antenna]
        d = delay_matrix(n_rb)                                    # [rb, rb]
        self.register_buffer("angle", _left(a), persistent=False)
        self.register_buffer("delay", _right(d.T), persistent=False)
        self.register_buffer("angle_inv", _left(a.conj().T), persistent=False)
        self.register_buffer("delay_inv", _right(d.conj()), persistent=False)
        self.register_buffer("neighbour_index", _neighbour_index(pols, rows, cols, n_rb),
                             persistent=False)
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
        out = self.gate[2]
        assert isinstance(out, nn.Linear)
        nn.init.zeros_(out.weight)
        with torch.no_grad():
            out.bias.copy_(torch.cat([torch.ones(1), torch.zeros(filters)]))
        self.ar = ArPrior(history, horizon, ar_order)
        self.fit_threshold = nn.Parameter(torch.tensor([2.0, 1.0]))   # log-SNR centre, slope

    # -- transforms, real arithmetic: Re and Im on axis 1, no transposes of the big tensors
    def _to_time_major(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``[b, 2t, antenna * rb]`` -> coefficients ``[b, 2, t, k]`` (Re, Im)."""
        t, a, r = int(rows.shape[1]) // 2, self.n_ant, self.n_rb
        x = rows.reshape(-1, 2, t, a, r)
        z = _apply_right(_apply_left(self.angle, x), self.delay)  # [b, 2, t, a, r]
        return z.reshape(-1, 2, t, a * r)

    def _to_coefficients(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``[b, 2t, antenna * rb]`` -> coefficients ``[b, 2, k, t]`` (Re, Im)."""
        return self._to_time_major(rows).transpose(2, 3)

    def _to_rows(self, coef: torch.Tensor) -> torch.Tensor:
        """Coefficients ``[b, 2, h, k]`` -> forecast rows ``[b, 2h, antenna * rb]``, step-major
        (``Re`` then ``Im`` of step 1, then of step 2, ... as ``ArPrior``'s output)."""
        h, a, r = int(coef.shape[2]), self.n_ant, self.n_rb
        z = coef.reshape(-1, 2, h, a, r)
        x = _apply_left(self.angle_inv, _apply_right(z, self.delay_inv))  # [b, 2, h, a, r]
        return x.reshape(-1, 2, h, a * r).transpose(1, 2).reshape(-1, 2 * h, a * r)

    # -- descriptors
    def _lag_correlations(self, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        """``[b, k, t]`` Re/Im -> ``[b, k, 2 * lags]`` unnormalised ``sum_t z[t+l] conj(z[t])``."""
        out = []
        for lag in range(1, self.lags + 1):
            a_re, a_im, b_re, b_im = re[..., lag:], im[..., lag:], re[..., :-lag], im[..., :-lag]
            out.append((a_re * b_re + a_im * b_im).sum(-1, keepdim=True))
            out.append((a_im * b_re - a_re * b_im).sum(-1, keepdim=True))
        return torch.cat(out, dim=-1)

    def descriptors(self, coef: torch.Tensor, noise: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients ``[b, 2, k, t]`` and noise power ``[b, 1]`` (``forward``: the
        ``noise_quantile`` of all coefficients' powers) -> (descriptors ``[b, k, 2 + 4 lags]``,
        log SNR ``[b, k]`` of each coefficient against the noise)."""
        re, im = coef[:, 0], coef[:, 1]
        power = (re * re + im * im).mean(-1)                                   # [b, k]
        snr = torch.log(power / (noise + _EPS) + _EPS)                          # [b, k]
        corr = self._lag_correlations(re, im)                                   # [b, k, 2L]
        energy = power[..., None] * self.history + _EPS
        pooled = corr.sum(1, keepdim=True) / energy.sum(1, keepdim=True)        # [b, 1, 2L]
        k = int(power.shape[1])
        seq = torch.cat([torch.log(noise + _EPS)[..., None].expand(-1, k, 1),
                         pooled.expand(-1, k, -1)], dim=-1)
        return torch.cat([snr[..., None], corr / energy, seq], dim=-1), snr

    def _aligned_neighbours(self, coef: torch.Tensor, near: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the neighbours say about each coefficient's history.

        A path leaks into the adjacent delay taps and beams and shows on both polarisations with
        the same time evolution, scaled by a complex factor. For each neighbour ``j`` of ``k``
        (``near`` ``[b, 2, k, t, 7]``: ``_neighbour_index``) the least-squares factor
        ``rho = <z_k, z_j> / |z_j|^2`` aligns ``rho z_j`` to ``z_k``; the aligned copies are
        averaged with weights = their coherence ``|<z_k, z_j>|^2 / (|z_k|^2 |z_j|^2)``. The
        sums over time and over neighbours are batched MatMuls (ONNX Runtime broadcasts an
        innermost axis slowly). ``coef`` ``[b, 2, k, t]`` -> (average ``[b, 2, k, t]``,
        descriptors ``[b, k, 2]``: mean and max coherence)."""
        re, im = coef[:, 0, :, None, :], coef[:, 1, :, None, :]               # [b, k, 1, t]
        n_re, n_im = near[:, 0], near[:, 1]                                   # [b, k, t, 7]
        own = (re * re + im * im).sum(-1)                                     # [b, k, 1]
        power = (n_re * n_re + n_im * n_im).sum(2)                            # [b, k, 7]
        c_re = (re @ n_re + im @ n_im)[:, :, 0]                               # <z_k, z_j>
        c_im = (im @ n_re - re @ n_im)[:, :, 0]                               # [b, k, 7]
        coherence = (c_re * c_re + c_im * c_im) / (own * power + _EPS)
        w_re = (coherence * c_re / (power + _EPS))[..., None]                # [b, k, 7, 1]
        w_im = (coherence * c_im / (power + _EPS))[..., None]
        total = torch.stack([(n_re @ w_re - n_im @ w_im)[..., 0],
                             (n_im @ w_re + n_re @ w_im)[..., 0]], dim=1)    # [b, 2, k, t]
        weights = coherence.sum(-1)                                           # [b, k]
        desc = torch.stack([coherence.mean(-1), coherence.max(-1).values], dim=-1)
        return total / (weights[:, None, :, None] + _EPS), desc

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``[b, 2 * history, antenna * rb]`` -> forecast rows ``[b, 2 * horizon, ...]``.

        With ``keep`` only the ``keep`` strongest coefficients of each sequence (mean power over
        the history) are forecast, the others are set to zero (they hold noise: at std the 256
        strongest of 1536 hold 98 % of a Sionna channel's power)."""
        coef = self._to_time_major(rows)                                     # [b, 2, t, k]
        power = (coef * coef).sum(1).mean(1)                                 # [b, k]
        noise = torch.topk(power, self.n_noise, dim=1, largest=False).values.max(
            dim=1, keepdim=True).values                                      # [b, 1]
        if self.keep is None:                                                # every one
            near = (self._gather(coef, self.neighbour_index.expand(coef.shape[0], -1, -1))
                    if self.neighbours else None)
            forecast = self.coefficients_forecast(coef.transpose(2, 3), noise, near)
            return self._to_rows(forecast.transpose(2, 3))
        chosen = torch.topk(power, self.keep, dim=1).indices                 # [b, s]
        picked = self._gather(coef, chosen[..., None])[..., 0]              # [b, 2, s, t]
        near = self._gather(coef, self.neighbour_index[chosen]) if self.neighbours else None
        forecast = self.coefficients_forecast(picked, noise, near).transpose(2, 3)  # [b,2,H,s]
        full = torch.zeros(coef.shape[0], 2, self.horizon, coef.shape[3], dtype=coef.dtype,
                           device=coef.device)
        return self._to_rows(full.scatter(
            3, chosen[:, None, None, :].expand(-1, 2, self.horizon, -1), forecast))

    def _gather(self, coef: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Histories of coefficients ``index`` ``[b, s, n]`` from ``coef`` ``[b, 2, t, k]``
        -> ``[b, 2, s, t, n]``."""
        s, n, t = int(index.shape[1]), int(index.shape[2]), int(coef.shape[2])
        flat = index.reshape(-1, 1, 1, s * n).expand(-1, 2, t, -1)
        return torch.gather(coef, 3, flat).reshape(-1, 2, t, s, n).transpose(2, 3)

    def coefficients_forecast(self, coef: torch.Tensor, noise: torch.Tensor,
                              near: torch.Tensor | None = None) -> torch.Tensor:
        """History coefficients ``[b, 2, s, t]`` (all of them or the kept ones), their
        neighbours' ``near`` ``[b, 2, s, t, 7]`` (with ``neighbours``) and the noise power
        ``[b, 1]`` -> forecast coefficients ``[b, 2, s, H]``."""
        desc, snr = self.descriptors(coef, noise)
        inputs = coef
        if near is not None:
            average, coherence = self._aligned_neighbours(coef, near)
            desc = torch.cat([desc, coherence], dim=-1)
            inputs = torch.cat([coef, average], dim=3)              # [b, 2, s, 2t]
        gates = self.gate(desc)                                     # [b, s, filters + 1]
        weight = torch.sigmoid(self.fit_threshold[1] * (snr - self.fit_threshold[0]))
        count = int(coef.shape[2])
        flat = coef.permute(0, 1, 3, 2).reshape(-1, 2 * self.history, count)
        ar_rows = self.ar.forecast_weighted(flat, weight[:, None, :])   # [b, 2H, s]
        ar = ar_rows.reshape(-1, self.horizon, 2, count).permute(0, 2, 3, 1)
        width = int(inputs.shape[3])
        z = inputs.transpose(1, 2).reshape(-1, count, 2 * width)     # [b, s, 2n]
        w = torch.cat([torch.cat([self.w_re, -self.w_im], dim=2),
                       torch.cat([self.w_im, self.w_re], dim=2)], dim=1)  # [m, 2H, 2n]
        bank = z @ w.reshape(-1, 2 * width).t()                      # [b, s, m * 2H]
        bank = bank.reshape(-1, count, self.filters, 2 * self.horizon)
        mixed = (gates[..., 1:, None] * bank).sum(2)                 # [b, s, 2H] (Re H, Im H)
        out = mixed.reshape(-1, count, 2, self.horizon).transpose(1, 2)
        return out + gates[:, None, :, :1] * ar                      # [b, 2, s, H]

    def forecast(self, history: torch.Tensor) -> torch.Tensor:
        """``[b, history, antenna, rb, 2]`` -> ``[b, horizon, antenna, rb, 2]``."""
        return rows_to_future(self(series_rows(history)), self.n_ant, self.n_rb)
