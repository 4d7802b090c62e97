"""The learned angle-delay prior: exact transforms, phase equivariance, ONNX parity."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest
import torch

from csi.angle_delay import to_angle_delay
from csi.presets import get_preset
from csi.synthetic import synthetic_set
from distill.models.ad_prior import AngleDelayPrior
from distill.models.ar_prior import series_rows
from distill.models.priors import PriorSpec, make_prior
from distill.tensors import to_complex, to_real

STD = get_preset("std")


def _prior(neighbours: bool, keep: int | None = None) -> AngleDelayPrior:
    torch.manual_seed(0)
    prior = AngleDelayPrior(STD.rows, STD.cols, STD.pols, STD.n_rb, STD.history, STD.horizon,
                            filters=4, hidden=8, neighbours=neighbours, keep=keep)
    with torch.no_grad():                       # random gates: exercise every path
        for p in prior.gate.parameters():
            p.normal_(0.0, 0.3)
    return prior.eval()


def _history(n: int = 3, seed: int = 7) -> torch.Tensor:
    channels = synthetic_set(STD, n, snr_db=15.0, seed=seed)
    return torch.from_numpy(to_real(channels.observed()[:, :STD.history]))


def test_coefficients_equal_csi_angle_delay_and_invert() -> None:
    prior = _prior(False)
    x = _history()
    coef = prior._to_coefficients(series_rows(x))                       # [b, 2, k, t]
    want = to_angle_delay(to_complex(x.numpy()), STD.rows, STD.cols, STD.pols)
    got = (coef[:, 0] + 1j * coef[:, 1]).numpy().transpose(0, 2, 1).reshape(want.shape)
    np.testing.assert_allclose(got, want, atol=2e-5)
    rows = prior._to_rows(coef[..., :STD.horizon].transpose(2, 3))     # step-major rows
    back = rows.reshape(3, STD.horizon, 2, -1)
    direct = series_rows(x).reshape(3, 2, STD.history, -1)[:, :, :STD.horizon].transpose(1, 2)
    np.testing.assert_allclose(back.numpy(), direct.numpy(), atol=2e-5)


@pytest.mark.parametrize(("neighbours", "keep"), [(False, None), (True, None), (True, 200)])
def test_forecast_commutes_with_a_common_phase(neighbours: bool, keep: int | None) -> None:
    prior = _prior(neighbours, keep)
    x = _history()
    turn = np.exp(1j * 0.7)
    rotated = torch.from_numpy(to_real(to_complex(x.numpy()) * turn))
    with torch.no_grad():
        base, spun = prior.forecast(x).numpy(), prior.forecast(rotated).numpy()
    np.testing.assert_allclose(to_complex(spun), to_complex(base) * turn, atol=2e-4)


@pytest.mark.parametrize(("neighbours", "keep"), [(False, None), (True, None), (True, 200)])
def test_exports_to_onnx_and_matches_torch(neighbours: bool, keep: int | None) -> None:
    prior = _prior(neighbours, keep)
    rows = series_rows(_history())
    buffer = io.BytesIO()
    torch.onnx.export(prior, (rows,), buffer, input_names=["history"], output_names=["future"],
                      dynamic_axes={"history": {0: "batch"}}, opset_version=18, dynamo=False)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"history": rows.numpy()})[0]
    with torch.no_grad():
        want = prior(rows).numpy()
    assert np.max(np.abs(got - want)) < 1e-3 * max(1.0, float(np.max(np.abs(want))))


def test_keeping_every_coefficient_equals_no_selection() -> None:
    rows = series_rows(_history())
    with torch.no_grad():
        everything = _prior(True)(rows)
        kept = _prior(True, keep=STD.n_ant * STD.n_rb)(rows)
        strongest = _prior(True, keep=256)(rows)
    torch.testing.assert_close(kept, everything, rtol=1e-4, atol=1e-5)
    assert float((strongest - everything).abs().max()) > 0   # the rest is set to zero
    with pytest.raises(ValueError, match="keep"):
        _prior(False, keep=0)


def test_make_prior_builds_each_kind_and_refuses_unknown() -> None:
    assert isinstance(make_prior(PriorSpec("angle_delay"), STD), AngleDelayPrior)
    assert not isinstance(make_prior(PriorSpec("ar"), STD), AngleDelayPrior)
    with pytest.raises(ValueError, match="prior"):
        PriorSpec("kalman")
