"""The in-graph AR/Wiener prior equals csi's float64 AR predictor and exports to ONNX."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import torch

from csi.metrics import nmse_db
from csi.predictors import ArWiener
from csi.presets import get_preset
from csi.synthetic import synthetic_set
from distill.models.ar_prior import ArPrior, series_rows
from distill.tensors import to_complex, to_real

STD = get_preset("std")


def _prior_forecast(history: np.ndarray, horizon: int, rb_stride: int = 1) -> np.ndarray:
    prior = ArPrior(history.shape[1], horizon, order=6, rb_stride=rb_stride)
    with torch.no_grad():
        out = prior.forecast(torch.from_numpy(to_real(history)))
    return to_complex(out.numpy())


def test_coefficients_solve_the_complex_least_squares_problem() -> None:
    """The real-embedded normal equations give the complex LS solution of the pooled AR fit."""
    channels = synthetic_set(STD, 3, snr_db=18.0, seed=11)
    history = channels.observed()[:, :STD.history]
    p = 6
    prior = ArPrior(STD.history, STD.horizon, order=p, ridge=0.0)
    rows = series_rows(torch.from_numpy(to_real(history)))
    with torch.no_grad():
        solution = prior.coefficients(rows).numpy()
    got = solution[:, :p] + 1j * solution[:, p:]
    for i in range(3):
        x = history[i].reshape(STD.history, -1)                       # [time, series]
        lags = np.stack([x[p - 1 - j:STD.history - 1 - j] for j in range(p)], axis=-1)
        design, target = lags.reshape(-1, p), x[p:].reshape(-1)
        expected = np.linalg.lstsq(design, target, rcond=None)[0]
        assert np.allclose(got[i], expected, rtol=1e-3, atol=1e-4), (got[i], expected)


def test_prior_matches_classical_ar_on_noisy_channels() -> None:
    channels = synthetic_set(STD, 24, speed_range_kmh=(10, 100), snr_db=18.0, seed=3)
    observed = channels.observed()
    history, future = observed[:, :STD.history], channels.h[:, STD.history:]
    classical = nmse_db(ArWiener(order=6).predict(history, STD.horizon), future)
    in_graph = nmse_db(_prior_forecast(history, STD.horizon), future)
    assert abs(in_graph - classical) < 0.05, (in_graph, classical)
    # Fitting on every 4th RB (the student's setting) costs little accuracy.
    strided = nmse_db(_prior_forecast(history, STD.horizon, rb_stride=4), future)
    assert strided < classical + 0.5, (strided, classical)


def test_prior_is_near_exact_for_few_noiseless_doppler_components() -> None:
    channels = synthetic_set(STD, 8, speed_range_kmh=(30, 100), n_paths=3, seed=5)
    history, future = channels.h[:, :STD.history], channels.h[:, STD.history:]
    assert nmse_db(_prior_forecast(history, STD.horizon), future) < -35.0


def test_prior_exports_to_onnx_and_matches_torch() -> None:
    prior = ArPrior(STD.history, STD.horizon, order=6, rb_stride=4).eval()
    channels = synthetic_set(STD, 3, snr_db=18.0, seed=7)
    x = series_rows(torch.from_numpy(to_real(channels.observed()[:, :STD.history])))
    buffer = io.BytesIO()
    torch.onnx.export(prior, (x,), buffer, input_names=["history"], output_names=["future"],
                      dynamic_axes={"history": {0: "batch"}}, opset_version=18, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"history": x.numpy()})[0]
    with torch.no_grad():
        want = prior(x).numpy()
    assert np.max(np.abs(got - want)) < 1e-4 * max(1.0, float(np.max(np.abs(want))))
