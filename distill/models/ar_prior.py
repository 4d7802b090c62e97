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

    ``ridge`` is Tikhonov regularisation relative to the mean lag power (keeps the solve finite on
    noiseless, rank-deficient histories). The fit runs in float64 (the normal equations of
    thousands of samples lose too many digits in float32 for ONNX Runtime and torch to agree);
    the forecast in the input's float32.
    """

    lag_index: torch.Tensor
    shift: torch.Tensor

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
        # lag_index[j, k] = time of x[t - j] for target times t = order .. history - 1
        targets = torch.arange(order, history)
        self.register_buffer("lag_index", targets[None, :] - torch.arange(order + 1)[:, None],
                             persistent=False)
        self.register_buffer("shift", torch.diag(torch.ones(order - 1), -1), persistent=False)

    def coefficients(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """AR coefficients ``(a_re, a_im)``, each float32 ``[batch, order]``, with
        ``h[t] = sum_i a[i] h[t - 1 - i]`` fitted on ``history`` ``[b, t, antenna, rb, 2]``."""
        p = self.order
        b = history.shape[0]
        x = history[:, :, :, ::self.rb_stride].reshape(b, self.history, -1, 2)
        lagged = x[:, self.lag_index]                               # [b, p+1, t-p, s, 2]
        z = torch.cat([lagged[..., 0].reshape(b, p + 1, -1),
                       lagged[..., 1].reshape(b, p + 1, -1)], dim=1).double()
        corr = z @ z.transpose(1, 2)                                # [b, 2(p+1), 2(p+1)]
        q = p + 1
        g_re = corr[:, :q, :q] + corr[:, q:, q:]                    # Re sum conj(x_i) x_j
        g_im = corr[:, :q, q:] - corr[:, q:, :q]                    # Im sum conj(x_i) x_j
        gram_re, gram_im = g_re[:, 1:, 1:], g_im[:, 1:, 1:]         # lags 1..p
        system = torch.cat([torch.cat([gram_re, -gram_im], dim=2),
                            torch.cat([gram_im, gram_re], dim=2)], dim=1)
        eye = torch.eye(2 * p, dtype=torch.float64, device=history.device)
        power = (system * eye).sum(dim=(1, 2)) / (2 * p)            # mean lag power [b]
        system = system + (self.ridge * power + 1e-12)[:, None, None] * eye
        rhs = torch.cat([g_re[:, 1:, 0], g_im[:, 1:, 0]], dim=1)    # <x_lag, x_target>
        solution = _solve_spd(system, rhs).float()
        return solution[:, :p], solution[:, p:]

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """``[b, history, antenna, rb, 2]`` -> AR forecast ``[b, horizon, antenna, rb, 2]``."""
        a_re, a_im = self.coefficients(history)
        b, p = history.shape[0], self.order
        # Row h of the companion matrix's h-th power gives step h as a combination of the last p
        # observations: r_1 = a, r_{h+1} = r_h C with C = shift + e_1 a^T.
        c_re = self.shift + torch.cat([a_re[:, None], torch.zeros_like(self.shift[1:])[None]
                                       .expand(b, -1, -1)], dim=1)
        c_im = torch.cat([a_im[:, None], torch.zeros_like(self.shift[1:])[None]
                          .expand(b, -1, -1)], dim=1)
        r_re, r_im = a_re[:, None], a_im[:, None]                   # [b, 1, p]
        rows_re, rows_im = [r_re], [r_im]
        for _ in range(self.horizon - 1):
            r_re, r_im = r_re @ c_re - r_im @ c_im, r_re @ c_im + r_im @ c_re
            rows_re.append(r_re)
            rows_im.append(r_im)
        k_re, k_im = torch.cat(rows_re, dim=1), torch.cat(rows_im, dim=1)   # [b, horizon, p]
        combine = torch.cat([torch.cat([k_re, -k_im], dim=2),
                             torch.cat([k_im, k_re], dim=2)], dim=1)         # [b, 2H, 2p]
        window = history[:, -p:].flip(1).reshape(b, p, -1, 2)              # newest first
        stacked = torch.cat([window[..., 0], window[..., 1]], dim=1)       # [b, 2p, s]
        out = (combine @ stacked).reshape(b, 2, self.horizon, -1)          # [b, 2, H, s]
        return out.permute(0, 2, 3, 1).reshape(b, self.horizon, *history.shape[2:4], 2)


def _solve_spd(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve ``system @ x = rhs`` for symmetric positive-definite ``system`` ``[b, n, n]``,
    ``rhs`` ``[b, n]`` -> ``x`` ``[b, n]``, by Gauss-Jordan elimination unrolled over ``n``
    (no pivoting: SPD matrices do not need it; plain ops so it exports to ONNX)."""
    n = system.shape[-1]
    aug = torch.cat([system, rhs[:, :, None]], dim=2)               # [b, n, n + 1]
    eye = torch.eye(n, dtype=system.dtype, device=system.device)
    for k in range(n):
        row = aug[:, k:k + 1, :] / aug[:, k:k + 1, k:k + 1]        # [b, 1, n + 1]
        aug = aug - (aug[:, :, k:k + 1] - eye[:, k:k + 1]) * row   # row k becomes ``row``
    return aug[:, :, n]
