"""An in-graph AR/Wiener predictor: the classical prior that teacher and student refine.

``ArPrior`` is ``csi.predictors.ArWiener`` written in torch with real arithmetic only, so it is
differentiable, exports to plain ONNX (MatMul, Mul, Add, Div, Slice) and runs inside the model
graph in ONNX Runtime. Per sequence it fits AR(``order``) coefficients by least squares pooled over
all antenna/RB series (optionally every ``rb_stride``-th RB, to bound the fit's cost), solves the
complex normal equations by an unrolled Gauss-Jordan elimination (the real ``2p x 2p`` embedding of
a Hermitian positive-definite matrix needs no pivoting), and forecasts ``horizon`` steps
recursively.

A learned model then only has to predict the *correction* to this forecast: with a zero-initialised
head it starts exactly at the AR/Wiener baseline instead of at outdated CSI, and whatever it learns
(denoising, non-stationary Doppler, the high-speed regime where AR fails) is added on top.

Shapes: ``history`` ``[batch, time, antenna, rb, 2]`` (real, imaginary; any common scale) ->
future ``[batch, horizon, antenna, rb, 2]``.
"""

from __future__ import annotations

import torch
from torch import nn


class ArPrior(nn.Module):
    """Per-sequence least-squares AR(``order``) forecaster (no trainable parameters).

    ``ridge`` is Tikhonov regularisation relative to the mean lag power (keeps float32 solves
    finite on noiseless, rank-deficient histories).
    """

    def __init__(self, history: int, horizon: int, order: int, rb_stride: int = 1,
                 ridge: float = 1e-4) -> None:
        super().__init__()
        if order < 1 or history < order + 2:
            raise ValueError(f"AR order {order} needs 1 <= order <= history - 2 ({history - 2})")
        if rb_stride < 1 or horizon < 1:
            raise ValueError(f"rb_stride ({rb_stride}) and horizon ({horizon}) must be >= 1")
        self.history = history
        self.horizon = horizon
        self.order = order
        self.rb_stride = rb_stride
        self.ridge = ridge

    def coefficients(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """AR coefficients ``(a_re, a_im)``, each ``[batch, order]``, with
        ``h[t] = sum_i a[i] h[t - 1 - i]`` fitted on ``history`` ``[b, t, antenna, rb, 2]``."""
        p, t = self.order, self.history
        x = history[:, :, :, ::self.rb_stride]
        b = x.shape[0]
        # lagged series j = 0..p: x[t - j] for t = p..T-1; j = 0 is the target.
        lagged = torch.stack([x[:, p - j:t - j] for j in range(p + 1)], dim=1)
        real = lagged[..., 0].reshape(b, p + 1, -1)
        imag = lagged[..., 1].reshape(b, p + 1, -1)
        z = torch.cat([real, imag], dim=1).double()                 # [b, 2(p+1), n]
        corr = z @ z.transpose(1, 2)                                # [b, 2(p+1), 2(p+1)]
        q = p + 1
        rr, ii = corr[:, :q, :q], corr[:, q:, q:]
        ri, ir = corr[:, :q, q:], corr[:, q:, :q]
        g_re = rr + ii                                              # Re sum conj(x_i) x_j
        g_im = ri - ir                                              # Im sum conj(x_i) x_j
        gram_re, gram_im = g_re[:, 1:, 1:], g_im[:, 1:, 1:]         # lags 1..p
        rhs_re, rhs_im = g_re[:, 1:, 0], g_im[:, 1:, 0]             # <x_lag, x_target>
        system = torch.cat([torch.cat([gram_re, -gram_im], dim=2),
                            torch.cat([gram_im, gram_re], dim=2)], dim=1)
        eye = torch.eye(2 * p, dtype=torch.float64, device=history.device)
        power = (system * eye).sum(dim=(1, 2)) / (2 * p)            # mean lag power [b]
        system = system + (self.ridge * power + 1e-12)[:, None, None] * eye
        rhs = torch.cat([rhs_re, rhs_im], dim=1)
        solution = _solve_spd(system, rhs).float()
        return solution[:, :p], solution[:, p:]

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        a_re, a_im = self.coefficients(history)
        b = history.shape[0]
        shape = history.shape[2:4]
        window = history[:, -self.order:].flip(1).reshape(b, self.order, -1, 2)  # newest first
        w_re, w_im = window[..., 0], window[..., 1]                 # [b, p, s]
        steps = []
        for _ in range(self.horizon):
            n_re = (a_re[:, :, None] * w_re - a_im[:, :, None] * w_im).sum(dim=1)
            n_im = (a_re[:, :, None] * w_im + a_im[:, :, None] * w_re).sum(dim=1)
            steps.append(torch.stack([n_re, n_im], dim=-1))
            w_re = torch.cat([n_re[:, None], w_re[:, :-1]], dim=1)
            w_im = torch.cat([n_im[:, None], w_im[:, :-1]], dim=1)
        return torch.stack(steps, dim=1).reshape(b, self.horizon, *shape, 2)


def _solve_spd(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve ``system @ x = rhs`` for symmetric positive-definite ``system`` ``[b, n, n]``,
    ``rhs`` ``[b, n]`` -> ``x`` ``[b, n]``, by Gauss-Jordan elimination unrolled over ``n``
    (no pivoting: SPD matrices do not need it; plain ops so it exports to ONNX)."""
    n = system.shape[-1]
    aug = torch.cat([system, rhs[:, :, None]], dim=2)               # [b, n, n + 1]
    eye = torch.eye(n, dtype=system.dtype, device=system.device)
    for k in range(n):
        row = aug[:, k:k + 1, :] / aug[:, k:k + 1, k:k + 1]        # [b, 1, n + 1]
        aug = aug - aug[:, :, k:k + 1] * row + eye[:, k:k + 1] * row
    return aug[:, :, n]
