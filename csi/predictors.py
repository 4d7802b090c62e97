"""Classical channel predictors, one interface: ``predict(history, horizon) -> future``.

``history`` is complex ``[batch, time, antenna, rb]`` (past SRS estimates, oldest first) and the
returned ``future`` is complex64 ``[batch, horizon, antenna, rb]``. Every predictor is
vectorised over batch, antennas and RBs.

Each sequence is modelled as a mixture of the same few Doppler components on every antenna and RB
(the multipath components are common; antenna and frequency only change their weights). So the
AR coefficients are fitted once per sequence by least squares pooled over all antenna/RB series,
which is exact for ``order >= number of distinct Doppler components`` on noiseless data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from csi.angle_delay import from_angle_delay, noise_power, to_angle_delay, wiener_smooth
from csi.presets import Preset

LONG_AR_ORDER = 14  # the long AR of the ar14 and ar_ad rows (16-step std histories)
_CHUNK = 64  # sequences per vectorised block (bounds memory at std size to ~100 MB)


class Predictor(Protocol):
    """What every channel predictor offers (classical ones here, learned ones elsewhere)."""

    name: str

    def predict(self, history: np.ndarray, horizon: int) -> np.ndarray:
        """``[batch, time, antenna, rb]`` past -> ``[batch, horizon, antenna, rb]`` future."""
        ...


def _check_history(history: np.ndarray, min_steps: int) -> None:
    if history.ndim != 4:
        raise ValueError(f"history must be [batch, time, antenna, rb], got shape {history.shape}")
    if history.shape[1] < min_steps:
        raise ValueError(f"history has {history.shape[1]} steps, this predictor needs {min_steps}")


def _in_chunks(history: np.ndarray, horizon: int,
               fn: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    out = np.empty((history.shape[0], horizon, *history.shape[2:]), dtype=np.complex64)
    for start in range(0, history.shape[0], _CHUNK):
        out[start:start + _CHUNK] = fn(history[start:start + _CHUNK], horizon)
    return out


def _pinv_solve(gram: np.ndarray, rhs: np.ndarray, rcond: float = 1e-10) -> np.ndarray:
    """Minimum-norm solution of ``gram @ x = rhs`` for Hermitian PSD ``gram`` ``[b, p, p]``."""
    w, v = np.linalg.eigh(gram)
    keep = w > rcond * np.max(w, axis=-1, keepdims=True)
    inv = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
    proj = np.einsum("bji,bj->bi", v.conj(), rhs)
    return np.einsum("bij,bj->bi", v, inv * proj)


def fit_ar(history: np.ndarray, order: int, noise_var: np.ndarray | None = None,
           ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares AR fit per sequence, pooled over antennas and RBs.

    ``history`` ``[b, t, antenna, rb]`` -> (coefficients ``[b, order]`` complex128 with
    ``h[t] = sum_i a[i] * h[t - 1 - i]``, residual power per sequence ``[b]``). With
    ``noise_var`` ``[b]`` (white measurement noise power per sample) the fit is bias-compensated:
    the noise's contribution to the lag Gram matrix is removed before solving, so noisy
    estimates do not shrink the coefficients toward zero. ``ridge`` adds that fraction of the
    mean lag power to the Gram diagonal (Tikhonov), for histories that are nearly low-rank.
    """
    b, t = history.shape[:2]
    series = history.reshape(b, t, -1).astype(np.complex128)
    target = series[:, order:]                                        # [b, t-p, s]
    lags = np.stack([series[:, order - 1 - i:t - 1 - i] for i in range(order)], axis=1)
    lags = lags.reshape(b, order, -1)                                 # [b, p, (t-p)*s]
    gram = lags.conj() @ lags.transpose(0, 2, 1)
    if noise_var is not None:
        floor = 0.5 * np.min(np.linalg.eigvalsh(gram), axis=-1)
        shift = np.minimum(noise_var * lags.shape[2], np.maximum(floor, 0.0))
        gram = gram - shift[:, None, None] * np.eye(order)
    if ridge:
        lag_power = np.real(np.trace(gram, axis1=1, axis2=2)) / order
        gram = gram + ridge * lag_power[:, None, None] * np.eye(order)
    rhs = (lags.conj() @ target.reshape(b, -1, 1))[..., 0]
    coef = _pinv_solve(gram, rhs)
    resid = target.reshape(b, -1) - (coef[:, None, :] @ lags)[:, 0]
    return coef, np.mean(np.abs(resid) ** 2, axis=1)


class OutdatedCsi:
    """Use the last observed channel for every future step (the no-prediction baseline)."""

    name = "outdated"

    def predict(self, history: np.ndarray, horizon: int) -> np.ndarray:
        _check_history(history, 1)
        last = history[:, -1:].astype(np.complex64)
        return np.repeat(last, horizon, axis=1)


class ArWiener:
    """AR(order) / Wiener predictor: per-sequence least squares, recursive multi-step forecast."""

    def __init__(self, order: int = 6, name: str = "ar") -> None:
        if order < 1:
            raise ValueError(f"AR order must be >= 1, got {order}")
        self.order = order
        self.name = name

    def predict(self, history: np.ndarray, horizon: int) -> np.ndarray:
        _check_history(history, self.order + 2)
        return _in_chunks(history, horizon, self._predict_block)

    def _predict_block(self, history: np.ndarray, horizon: int) -> np.ndarray:
        return self.forecast(history, self.order, horizon)

    @staticmethod
    def forecast(history: np.ndarray, order: int, horizon: int,
                 noise_var: np.ndarray | None = None, ridge: float = 0.0) -> np.ndarray:
        """Fit AR(``order``) (``fit_ar``) and forecast ``horizon`` steps recursively:
        ``[b, t, antenna, rb]`` -> ``[b, horizon, antenna, rb]`` complex128."""
        coef, _ = fit_ar(history, order, noise_var, ridge)
        b, t = history.shape[:2]
        window = history.reshape(b, t, -1)[:, -order:][:, ::-1].astype(np.complex128)
        out = []
        for _ in range(horizon):                                      # window[:, 0] = newest
            nxt = (coef[:, None, :] @ window)[:, 0]
            out.append(nxt)
            window = np.concatenate([nxt[:, None], window[:, :-1]], axis=1)
        return np.stack(out, axis=1).reshape(b, horizon, *history.shape[2:])


class Kalman:
    """Kalman filter and forecaster with an AR(order) state model fitted per sequence.

    The state of each antenna/RB series is its last ``order`` values; transition = AR companion
    matrix from ``fit_ar``; measurement noise from the SRS SNR (``snr_db``, the estimate's SNR);
    process noise = AR residual power minus the part explained by measurement noise. The error
    covariance depends only on the model, so it is shared by all series of a sequence.
    """

    name = "kalman"

    def __init__(self, order: int = 6, snr_db: float = 18.0) -> None:
        if order < 1:
            raise ValueError(f"Kalman AR order must be >= 1, got {order}")
        self.order = order
        self.snr_db = snr_db

    def predict(self, history: np.ndarray, horizon: int) -> np.ndarray:
        _check_history(history, self.order + 2)
        return _in_chunks(history, horizon, self._predict_block)

    def _predict_block(self, history: np.ndarray, horizon: int) -> np.ndarray:
        p = self.order
        b, t = history.shape[:2]
        z = history.reshape(b, t, -1).astype(np.complex128)           # [b, t, s]
        power = np.mean(np.abs(z) ** 2, axis=(1, 2))
        r = power / (1.0 + 10.0 ** (self.snr_db / 10.0))
        coef, resid = fit_ar(history, p, noise_var=r)
        q = np.maximum(resid - r * (1.0 + np.sum(np.abs(coef) ** 2, axis=1)), 1e-3 * resid)
        q = np.maximum(q, 1e-12 * power + 1e-30)
        trans = np.zeros((b, p, p), dtype=np.complex128)
        trans[:, 0, :] = coef
        trans[:, 1:, :-1] = np.eye(p - 1)
        x = z[:, :p][:, ::-1].transpose(0, 2, 1).copy()               # [b, s, p], newest first
        cov = np.repeat(np.eye(p)[None], b, axis=0) * r[:, None, None]
        for step in range(p, t):
            x, cov = self._time_update(trans, x, cov, q)
            gain = cov[:, :, 0] / (cov[:, 0, 0].real + r)[:, None]    # [b, p]
            innovation = z[:, step] - x[:, :, 0]                      # [b, s]
            x = x + innovation[:, :, None] * gain[:, None, :]
            cov = cov - gain[:, :, None] * cov[:, 0:1, :]
        out = []
        for _ in range(horizon):
            x, cov = self._time_update(trans, x, cov, q)
            out.append(x[:, :, 0])
        return np.stack(out, axis=1).reshape(b, horizon, *history.shape[2:])

    @staticmethod
    def _time_update(trans: np.ndarray, x: np.ndarray, cov: np.ndarray,
                     q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = x @ trans.transpose(0, 2, 1)                             # [b, s, p]
        cov = trans @ cov @ trans.conj().transpose(0, 2, 1)
        cov[:, 0, 0] += q
        return x, cov


class AngleDelayAr:
    """Angle-delay denoising, then a long AR forecast: the strongest classical row.

    Per sequence: transform the history to the angle-delay domain (``csi.angle_delay``), estimate
    the white noise power per coefficient from the weakest coefficients (``noise_power``; divided
    by ``leakage``, how far that estimate reads above the true noise on Sionna channels), denoise
    jointly over coefficients and time (``wiener_smooth``), fit AR(``order``) pooled over all
    coefficient series with a small ridge (``ridge`` times the mean lag power; the
    smoothed history is nearly low-rank in time, and without it an AR(14) fit is sometimes
    unstable), forecast recursively and transform back. Needs no SNR: the noise comes from the
    data.
    """

    name = "ar_ad"

    def __init__(self, rows: int, cols: int, pols: int, order: int = LONG_AR_ORDER,
                 leakage: float = 1.23, ridge: float = 3e-4) -> None:
        if order < 1:
            raise ValueError(f"AR order must be >= 1, got {order}")
        if leakage <= 0 or ridge < 0:
            raise ValueError(f"leakage must be > 0 and ridge >= 0, got {leakage}, {ridge}")
        self.rows, self.cols, self.pols = rows, cols, pols
        self.order = order
        self.leakage = leakage
        self.ridge = ridge

    @classmethod
    def for_preset(cls, preset: Preset) -> AngleDelayAr:
        """The predictor for ``preset``'s array geometry: AR(``LONG_AR_ORDER``), or the longest
        the history allows (``history - 2``)."""
        return cls(preset.rows, preset.cols, preset.pols,
                   order=min(LONG_AR_ORDER, preset.history - 2))

    def predict(self, history: np.ndarray, horizon: int) -> np.ndarray:
        _check_history(history, self.order + 2)
        if history.shape[2] != self.rows * self.cols * self.pols:
            raise ValueError(f"history has {history.shape[2]} antennas, the array has "
                             f"{self.rows * self.cols * self.pols}")
        return _in_chunks(history, horizon, self._predict_block)

    def _predict_block(self, history: np.ndarray, horizon: int) -> np.ndarray:
        geometry = (self.rows, self.cols, self.pols)
        z = to_angle_delay(history.astype(np.complex128), *geometry)       # [b, t, a, r]
        smoothed = wiener_smooth(z, noise_power(z) / self.leakage)
        forecast = ArWiener.forecast(smoothed, self.order, horizon, ridge=self.ridge)
        return from_angle_delay(forecast, *geometry)


CLASSICAL: dict[str, Callable[[], Predictor]] = {
    "outdated": OutdatedCsi,
    "ar": ArWiener,
    "kalman": Kalman,
}


def classical_predictors() -> list[Predictor]:
    """One instance of each classical baseline with its default settings."""
    return [make() for make in CLASSICAL.values()]
