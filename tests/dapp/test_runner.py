"""OnnxRunner: exact ORT results through IOBinding, the Predictor protocol, refusals."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from dapp_helpers import doppler_channels
from onnx import TensorProto, helper

from csi.codebook import beam_gains, dft_codebook
from csi.model_io import to_model_input
from csi.presets import STD, TINY
from dapp.artifact import TaskSpec
from dapp.errors import PreconditionFailed
from dapp.onnx_models import linear_model
from dapp.runner import OnnxRunner


@pytest.fixture
def linear_path(tmp_path: Path) -> Path:
    path = tmp_path / "linear.onnx"
    onnx.save(linear_model(TINY, "lin-1"), path)
    return path


@pytest.mark.parametrize("batch", [1, 5, 16])
def test_outputs_equal_plain_onnxruntime(linear_path: Path, batch: int) -> None:
    runner = OnnxRunner(linear_path, task=TaskSpec.from_preset(TINY))
    history = doppler_channels(batch, TINY.history, seed=batch)
    future, beams = runner.predict_with_beams(history)
    model_in, scale = to_model_input(history)
    ref_future, ref_beams = ort.InferenceSession(str(linear_path)).run(None, {"history": model_in})
    expected = (ref_future[..., 0] + 1j * ref_future[..., 1]) * scale[:, None, None, None]
    np.testing.assert_allclose(future, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(beams, ref_beams)
    assert future.dtype == np.complex64 and future.shape == (batch, TINY.horizon, 8, 12)


def test_linear_model_extrapolates_at_input_scale(linear_path: Path) -> None:
    runner = OnnxRunner(linear_path)
    history = 7.5 * doppler_channels(3, 12)            # longer than the window, not unit power
    future = runner.predict(history, 2)
    step = history[:, -1] - history[:, -2]
    expected = np.stack([history[:, -1] + (k + 1) * step for k in range(2)], axis=1)
    np.testing.assert_allclose(future, expected, rtol=1e-4, atol=1e-5)
    _, beams = runner.predict_with_beams(history)
    gains = beam_gains(runner.predict(history, 1)[:, 0], dft_codebook(TINY))
    np.testing.assert_array_equal(np.argmax(beams, axis=1), np.argmax(gains, axis=1))


def test_predictor_protocol_and_bounds(linear_path: Path) -> None:
    runner = OnnxRunner(linear_path)
    assert runner.name == "onnx:lin-1" and runner.version == "lin-1"
    history = doppler_channels(2, TINY.history)
    assert runner.predict(history, 1).shape == (2, 1, 8, 12)
    with pytest.raises(ValueError, match="horizon"):
        runner.predict(history, TINY.horizon + 1)
    with pytest.raises(ValueError, match="steps"):
        runner.predict(history[:, :3], 1)
    with pytest.raises(ValueError, match="history must be"):
        runner.predict(history[..., :5], 1)


def test_concurrent_calls_match_serial(linear_path: Path) -> None:
    runner = OnnxRunner(linear_path)
    inputs = [doppler_channels(1 + i % 3, TINY.history, seed=i) for i in range(32)]
    serial = [runner.predict(x, 2) for x in inputs]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda x: runner.predict(x, 2), inputs))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_refuses_model_of_another_task(linear_path: Path) -> None:
    with pytest.raises(PreconditionFailed, match=r"n_ant=8 .*needs 32"):
        OnnxRunner(linear_path, task=TaskSpec.from_preset(STD))


def test_refuses_model_without_the_contract(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "other.onnx")
    with pytest.raises(PreconditionFailed, match="model_io contract"):
        OnnxRunner(tmp_path / "other.onnx")
