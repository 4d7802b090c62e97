"""Fake-quant wrappers: bounded effect, straight-through gradients, exact removal, ORT fidelity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from csi.model_io import INPUT_NAME
from csi.presets import TINY
from distill.export import example_input, export_onnx, quantize_int8
from distill.models.ar_prior import ArPrior
from distill.models.student import Student, student_config
from distill.qat import (
    WEIGHT_QMAX,
    QatConfig,
    activation_ranges,
    attach_fake_quant,
    calibrate,
    remove_fake_quant,
    set_activation_ranges,
    snap_weights,
    wrappers,
)


def _student() -> Student:
    """A tiny student with non-trivial weights everywhere (the heads start at zero)."""
    torch.manual_seed(0)
    model = Student(student_config(TINY), TINY)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.1)
            nn.init.normal_(module.bias, std=0.05)
    return model.eval()


def _rel(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.sum((a - b) ** 2) / np.sum(b ** 2))


def _correction(model: Student, x: torch.Tensor) -> torch.Tensor:
    """What the network adds to the AR forecast (the part fake quantisation acts on)."""
    return model(x)[0] - model.prior.forecast(x)


def test_fake_quant_changes_outputs_a_little_and_gradients_flow_straight_through() -> None:
    model, x = _student(), example_input(TINY, 8, seed=3)
    with torch.no_grad():
        clean = _correction(model, x)
    names = attach_fake_quant(model)
    assert set(names) == {n for n, m in _student().named_modules() if isinstance(m, nn.Linear)}
    calibrate(model, example_input(TINY, 32, seed=1))
    with torch.no_grad():
        quantized = _correction(model, x)
    assert 0.0 < _rel(quantized, clean) < 1e-2            # 8-bit: changed, but only a little

    model.train()
    future, logits = model(x)
    (future.pow(2).mean() + logits.pow(2).mean()).backward()
    fq_grads = {n: w.linear.weight.grad.clone() for n, w in wrappers(model).items()}
    remove_fake_quant(model)
    model.zero_grad()
    future, logits = model(x)
    (future.pow(2).mean() + logits.pow(2).mean()).backward()
    for name, grad in fq_grads.items():                  # rounding has zero derivative: STE
        ref = model.get_submodule(name).weight.grad
        assert grad.abs().sum() > 0 and torch.isfinite(grad).all(), name
        cosine = torch.nn.functional.cosine_similarity(grad.flatten(), ref.flatten(), dim=0)
        assert cosine > 0.9, (name, float(cosine))


def test_removing_the_wrappers_restores_modules_outputs_and_onnx_graph(tmp_path: Path) -> None:
    model, x = _student(), example_input(TINY, 4, seed=5)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    keys = list(model.state_dict())
    with torch.no_grad():
        before = model(x)
    graph_before = export_onnx(model, TINY, tmp_path / "before.onnx", "v")
    attach_fake_quant(model)
    calibrate(model, example_input(TINY, 16, seed=1))
    with torch.no_grad():
        assert not torch.equal(model(x)[0], before[0])
    assert sorted(remove_fake_quant(model)) == sorted(linears)
    assert all(model.get_submodule(n) is m for n, m in linears.items())
    assert list(model.state_dict()) == keys and not wrappers(model)
    with torch.no_grad():
        after = model(x)
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    graph_after = export_onnx(model, TINY, tmp_path / "after.onnx", "v")

    def ops(path: Path) -> list[tuple[str, tuple[str, ...]]]:
        graph = onnx.load(str(path)).graph
        return [(n.op_type, tuple(n.input)) for n in graph.node]

    assert ops(graph_after) == ops(graph_before)


class _PriorWithLinear(ArPrior):
    """An ArPrior that (unlike the real one) holds a linear layer: it must stay float."""

    def __init__(self) -> None:
        super().__init__(TINY.history, TINY.horizon, order=2)
        self.inner = nn.Linear(4, 4)


def test_only_linear_layers_outside_the_ar_prior_are_wrapped() -> None:
    model = nn.ModuleDict({"prior": _PriorWithLinear(), "head": nn.Linear(4, 2),
                           "act": nn.GELU()})
    assert attach_fake_quant(model) == ["head"]
    assert isinstance(model["prior"].inner, nn.Linear)  # type: ignore[index]


class _Toy(nn.Module):
    """A small model on the ``csi.model_io`` contract: 4-D linear layers (MatMul + Add in ONNX)
    and a 2-D one (Gemm), so the fake quantisation can be compared with ORT op by op."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(TINY.history * 2, 32)
        self.fc2 = nn.Linear(32, TINY.horizon * 2)
        self.head = nn.Linear(TINY.n_ant * TINY.n_rb * TINY.horizon * 2, TINY.n_beams)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x.shape[0]
        series = x.permute(0, 2, 3, 1, 4).reshape(b, TINY.n_ant, TINY.n_rb, -1)
        y = self.fc2(nn.functional.gelu(self.fc1(series)))
        future = y.reshape(b, TINY.n_ant, TINY.n_rb, TINY.horizon, 2).permute(0, 3, 1, 2, 4)
        return future, self.head(y.reshape(b, -1))


def test_fake_quant_computes_what_onnx_runtime_int8_computes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    toy, calib, x = _Toy().eval(), example_input(TINY, 64, seed=1), example_input(TINY, 16, seed=2)
    fp32 = export_onnx(toy, TINY, tmp_path / "toy.onnx", "v")
    int8 = quantize_int8(fp32, tmp_path / "toy_int8.onnx", calib.numpy(), mode="static")
    # ORT's reference QDQ semantics (no fused integer kernels, which on AVX2 CPUs without VNNI
    # add their own u8 x s8 saturation error)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"]).run(
        None, {INPUT_NAME: x.numpy()})
    with torch.no_grad():
        plain = toy(x)
        attach_fake_quant(toy)
        calibrate(toy, calib)
        fake = toy(x)
    for f, p, r in zip(fake, plain, ref, strict=True):
        assert _rel(f, r) < 1e-9 < _rel(p, r)               # float differs; fake quant matches

    # and the student's weight scales are the ones ORT chose, layer by layer (per channel)
    student = _student()
    s_int8 = quantize_int8(export_onnx(student, TINY, tmp_path / "s.onnx", "v"),
                           tmp_path / "s_int8.onnx", calib.numpy(), mode="static")
    graph = onnx.load(str(s_int8)).graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    scales = [inits[n.input[1]] for n in graph.node if n.op_type == "DequantizeLinear"
              and inits.get(n.input[0], np.zeros(0, np.float32)).dtype == np.int8]
    for name, module in student.named_modules():
        if isinstance(module, nn.Linear):
            want = (module.weight.detach().abs().amax(dim=1) / WEIGHT_QMAX).numpy()
            assert any(s.shape == want.shape and np.allclose(s, want, rtol=1e-6)
                       for s in scales), name


def test_snapped_weights_lie_on_the_int8_grid_and_ranges_round_trip() -> None:
    model = _student()
    attach_fake_quant(model, QatConfig(per_channel=True))
    calibrate(model, example_input(TINY, 16, seed=1))
    snap_weights(model)
    for wrapper in wrappers(model).values():
        w = wrapper.linear.weight.detach()
        steps = w / (w.abs().amax(dim=1, keepdim=True) / WEIGHT_QMAX)
        torch.testing.assert_close(steps, steps.round(), atol=1e-3, rtol=0)
        torch.testing.assert_close(wrapper.quantized_weight(), w)
    ranges = activation_ranges(model)
    assert ranges and all(low <= high for low, high in ranges.values())
    other = _student()
    attach_fake_quant(other)
    set_activation_ranges(other, ranges)
    assert activation_ranges(other) == ranges


def test_misuse_gets_clear_errors() -> None:
    model = _student()
    with pytest.raises(ValueError, match="no fake-quant wrappers"):
        remove_fake_quant(model)
    with pytest.raises(ValueError, match="attach_fake_quant first"):
        calibrate(model, example_input(TINY, 2))
    attach_fake_quant(model)
    with pytest.raises(ValueError, match="already carries"):
        attach_fake_quant(model)
    with pytest.raises(RuntimeError, match="calibrate it"):
        model(example_input(TINY, 2))
    with pytest.raises(ValueError, match="at least one input"):
        calibrate(model, example_input(TINY, 2)[:0])
    with pytest.raises(ValueError, match="do not fit"):
        set_activation_ranges(model, {"embed.input": (-1.0, 1.0)})
    with pytest.raises(ValueError, match="range_momentum"):
        QatConfig(range_momentum=0.0)
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        attach_fake_quant(nn.Sequential(nn.GELU()))
