"""An in-graph AR/Wiener predictor: the classical prior that teacher and student refine.

``ArPrior`` is ``csi.predictors.ArWiener`` written in torch with real arithmetic only, so it is
differentiable and runs inside the model graph in ONNX Runtime. Per sequence it fits
AR(``order``) coefficients by least squares pooled over all antenna/RB series (optionally every
``rb_stride``-th RB, to bound the fit's cost) and forecasts ``horizon`` steps recursively.

The graph is built for ONNX Runtime's per-node overhead (about 1-2 µs a node on one CPU core,
which dominated the first version's 196 nodes): about 30 nodes in all.

- Fit: the complex problem ``y[t] = sum_i a_i x[t - 1 - i]`` is written as a real least-squares
  problem with the design matrix ``[[Re X, -Im X], [Im X, Re X]]`` and target ``[Re y, Im y]``.
  One Gather with a constant index builds that matrix with the target as its last row, one
  float64 MatMul gives the normal equations and the right-hand side together, and the solve is
  one matrix inverse (``torch.linalg.inv``; exported as ONNX Runtime's ``com.microsoft.Inverse``,
  see ``_inverse_symbolic``). Float64 because the normal equations of thousands of samples lose
  too many digits in float32 for ONNX Runtime and torch to agree.
- Forecast: step ``h`` is row block ``h`` of ``R C^(h-1)`` applied to the last ``order``
  observations, with ``R = [[a_re, -a_im], [a_im, a_re]]`` and ``C`` the real companion matrix;
  three small MatMuls build all steps and one MatMul applies them to every series.

A learned model then only has to predict the *correction* to this forecast: with a zero-initialised
head it starts exactly at the AR/Wiener baseline instead of at outdated CSI, and whatever it learns
(denoising, non-stationary Doppler, the high-speed regime where AR fails) is added on top.

Shapes: the module maps rows ``[batch, 2 * time, antenna * rb]`` (``series_rows`` of a history
``[batch, time, antenna, rb, 2]``, real and imaginary; any common scale) to forecast rows
``[batch, 2 * horizon, antenna * rb]``; ``forecast`` maps a history to a future
``[batch, horizon, antenna, rb, 2]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

INVERSE_DOMAIN = "com.microsoft"
"""ONNX domain of the matrix-inverse kernel (ONNX Runtime's contrib ops; no standard ONNX op
inverts a matrix)."""


def _inverse_symbolic(g: Any, matrix: Any) -> Any:
    """TorchScript-exporter symbolic: ``aten::linalg_inv`` -> ``com.microsoft::Inverse``
    (batched, float/double, in ONNX Runtime's CPU provider)."""
    out = g.op(f"{INVERSE_DOMAIN}::Inverse", matrix)
    out.setType(matrix.type())           # same shape and type as the input (tells the exporter)
    return out


torch.onnx.register_custom_op_symbolic("aten::linalg_inv", _inverse_symbolic, 9)


def series_rows(history: torch.Tensor) -> torch.Tensor:
    """``[b, t, antenna, rb, 2]`` -> ``[b, 2t, antenna * rb]``: rows ``Re x[0..t-1]`` then
    ``Im x[0..t-1]``, one column per antenna/RB series (the layout the prior works in)."""
    t, a, r = (int(n) for n in history.shape[1:4])   # plain ints: constant reshapes in ONNX
    return history.permute(0, 4, 1, 2, 3).reshape(-1, 2 * t, a * r)


def rows_to_future(rows: torch.Tensor, antennas: int, rbs: int) -> torch.Tensor:
    """Forecast rows ``[b, 2H, antenna * rb]`` (``ArPrior``'s output: step-major, real then
    imaginary) -> ``[b, H, antenna, rb, 2]``."""
    horizon = int(rows.shape[1]) // 2
    return rows.reshape(-1, horizon, 2, antennas, rbs).permute(0, 1, 3, 4, 2)


def _gram_index(history: int, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How the normal equations of the AR fit come out of the time Gram matrix.

    The real design matrix has ``2 * order + 1`` rows (variables), each the concatenation over the
    real and imaginary half ``h`` and the target times ``t = order .. history - 1`` of one signed
    row of ``[Re x; Im x]``: variable ``j < order`` (``Re a_(j+1)``) is ``Re x[t-1-j]`` then
    ``Im x[t-1-j]``; variable ``order + j`` (``Im a_(j+1)``) is ``-Im x[t-1-j]`` then
    ``Re x[t-1-j]``; the last one is the target, ``Re x[t]`` then ``Im x[t]``.

    Returns ``(index, sign)``: entry ``(u, v)`` of the design's Gram matrix is
    ``sum(time_gram.flatten()[index[u, v]] * sign[u, v])`` over the last axis, with ``index``
    ``[(2p+1)^2 * 2k]`` (flattened) into the ``[2 * history, 2 * history]`` time Gram matrix and
    ``sign`` ``[1, 2p+1, 2p+1, 2k]`` float64, ``k = history - order``."""
    t = torch.arange(order, history)
    rows, signs = [], []
    for j in range(order):
        rows.append(torch.cat([t - 1 - j, history + t - 1 - j]))
        signs.append(torch.ones(2 * len(t)))
    for j in range(order):
        rows.append(torch.cat([history + t - 1 - j, t - 1 - j]))
        signs.append(torch.cat([-torch.ones(len(t)), torch.ones(len(t))]))
    rows.append(torch.cat([t, history + t]))
    signs.append(torch.ones(2 * len(t)))
    row, sign = torch.stack(rows), torch.stack(signs).double()          # [2p+1, 2k]
    index = row[:, None, :] * (2 * history) + row[None, :, :]           # [2p+1, 2p+1, 2k]
    return index.reshape(-1), (sign[:, None, :] * sign[None, :, :])[None]


def _coefficient_map(order: int) -> torch.Tensor:
    """Constant ``[2 * order, 4 * order]`` with ``solution @ map`` = ``R`` flattened, where
    ``solution = [a_re, a_im]`` and ``R = [[a_re, -a_im], [a_im, a_re]]`` (``[2, 2 * order]``)."""
    eye, zero = torch.eye(order), torch.zeros(order, order)
    return torch.cat([torch.cat([eye, zero, zero, eye], dim=1),
                      torch.cat([zero, -eye, eye, zero], dim=1)], dim=0)


def _companion_shift(order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The state update of the real companion form, state ``[Re x_lag1..p, Im x_lag1..p]``:
    ``C = shift + insert @ R`` with ``shift`` ``[2p, 2p]`` moving every lag one older and
    ``insert`` ``[2p, 2]`` placing the new value at lag 1."""
    p = order
    one = torch.diag(torch.ones(p - 1), -1)
    shift = torch.block_diag(one, one)
    insert = torch.zeros(2 * p, 2)
    insert[0, 0] = 1.0
    insert[p, 1] = 1.0
    return shift, insert


class ArPrior(nn.Module):
    """Per-sequence least-squares AR(``order``) forecaster (no trainable parameters).

    ``ridge`` is Tikhonov regularisation relative to the mean lag power (keeps the solve finite on
    noiseless, rank-deficient histories).
    """

    gram_index: torch.Tensor
    gram_sign: torch.Tensor
    coefficient_map: torch.Tensor
    shift: torch.Tensor
    insert: torch.Tensor
    window_index: torch.Tensor

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
        shift, insert = _companion_shift(order)
        lags = torch.arange(history - 1, history - 1 - order, -1)          # newest first
        gram_index, gram_sign = _gram_index(history, order)
        buffers = {"gram_index": gram_index, "gram_sign": gram_sign,
                   "coefficient_map": _coefficient_map(order), "shift": shift, "insert": insert,
                   "window_index": torch.cat([lags, history + lags])}
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)

    def coefficients(self, rows: torch.Tensor) -> torch.Tensor:
        """AR coefficients ``[a_re, a_im]`` float32 ``[batch, 2 * order]`` with
        ``h[t] = sum_i a[i] h[t - 1 - i]``, fitted on every ``rb_stride``-th column of
        ``rows`` ``[b, 2t, series]`` (``series_rows``: every ``rb_stride``-th RB when the RB
        count is a multiple of it)."""
        p = self.order
        fit = rows[:, :, ::self.rb_stride].double()                          # [b, 2t, s]
        time_gram = (fit @ fit.transpose(1, 2)).flatten(1)                   # [b, 4t^2]
        gram = (time_gram[:, self.gram_index].reshape(-1, *self.gram_sign.shape[1:])
                * self.gram_sign).sum(dim=3)                                 # [b, 2p+1, 2p+1]
        system, rhs = gram[:, :2 * p, :2 * p], gram[:, :2 * p, 2 * p:]
        eye = torch.eye(2 * p, dtype=torch.float64, device=rows.device)
        power = (system * eye).sum(dim=(1, 2), keepdim=True) / (2 * p)      # mean lag power
        system = system + (self.ridge * power + 1e-12) * eye
        return (torch.linalg.inv(system) @ rhs).reshape(-1, 2 * p).float()

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``[b, 2 * history, series]`` (``series_rows``) -> forecast rows ``[b, 2H,
        series]``: ``Re`` then ``Im`` of step 1, then of step 2, ... Call the module (not a
        method) so that exported nodes carry its scope: ``distill.export`` keeps that scope
        float."""
        return self._forecast_with(self.coefficients(rows), rows)

    def forecast_weighted(self, rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Like calling the module, but the AR fit sees ``rows * weight`` (``weight``
        broadcastable to ``rows``, e.g. ``[b, 1, series]``: which series to trust) while the
        forecast is applied to every series of ``rows``."""
        return self._forecast_with(self.coefficients(rows * weight), rows)

    def _forecast_with(self, coefficients: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Coefficients ``[b, 2 * order]`` applied to rows ``[b, 2t, series]`` -> forecast rows
        ``[b, 2H, series]``."""
        step = (coefficients @ self.coefficient_map).reshape(-1, 2, 2 * self.order)
        companion = self.shift + self.insert @ step                         # [b, 2p, 2p]
        steps = [step]                                                      # R C^(h-1)
        for _ in range(self.horizon - 1):
            steps.append(steps[-1] @ companion)
        combine = torch.cat(steps, dim=1)                                   # [b, 2H, 2p]
        return combine @ rows[:, self.window_index]                         # [b, 2H, series]

    def forecast(self, history: torch.Tensor) -> torch.Tensor:
        """``[b, history, antenna, rb, 2]`` -> AR forecast ``[b, horizon, antenna, rb, 2]``."""
        return rows_to_future(self(series_rows(history)), int(history.shape[2]),
                              int(history.shape[3]))
