"""ONNX export: parity with torch, dynamic batch, metadata; INT8 keeps the contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from csi.model_io import INPUT_NAME, MODEL_METADATA_KEYS
from csi.presets import TINY
from distill.export import (
    FLOAT_SCOPES,
    INT8_MODES,
    example_input,
    export_onnx,
    parity_error,
    quantize_int8,
    read_metadata,
)
from distill.latency import measure_latency
from distill.models.student import Student, student_config
from distill.models.teacher import Teacher, teacher_config


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Give the zero-initialised heads weights, so parity is tested on non-trivial outputs."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.05)
            torch.nn.init.normal_(module.bias, std=0.05)
    return model.eval()


@pytest.mark.parametrize("make", [lambda: Student(student_config(TINY), TINY),
                                  lambda: Teacher(teacher_config(TINY), TINY)],
                         ids=["student", "teacher"])
def test_onnx_fp32_parity_within_1e4(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = _randomised(make())
    path = export_onnx(model, TINY, tmp_path / "m.onnx", "v-test")
    for batch in (1, 5):                                   # dynamic batch axis
        assert parity_error(model, path, example_input(TINY, batch, seed=batch)) <= 1e-4


def test_onnx_carries_model_io_names_and_metadata(tmp_path: Path) -> None:
    path = export_onnx(_randomised(Student(student_config(TINY), TINY)), TINY,
                       tmp_path / "m.onnx", "v7")
    meta = read_metadata(path)
    assert set(MODEL_METADATA_KEYS) <= set(meta)
    assert meta["kdran_preset"] == "tiny" and meta["version"] == "v7"
    assert meta["n_beams"] == str(TINY.n_beams)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == ["future", "beam_logits"]


@pytest.mark.parametrize("mode", INT8_MODES)
def test_int8_quantization_keeps_io_and_metadata(tmp_path: Path, mode: str) -> None:
    import onnx

    model = _randomised(Student(student_config(TINY), TINY))
    fp32 = export_onnx(model, TINY, tmp_path / "fp32.onnx", "v1")
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", example_input(TINY, 32).numpy(), mode)
    assert read_metadata(int8) == read_metadata(fp32)
    x = example_input(TINY, 4, seed=9).numpy()
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(
        None, {INPUT_NAME: x})[0]
    got = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(
        None, {INPUT_NAME: x})[0]
    assert got.shape == ref.shape
    rel = np.sum((got - ref) ** 2) / np.sum(ref ** 2)
    assert 0 < rel < 0.05                                   # close, not identical
    assert int8.stat().st_size < fp32.stat().st_size
    nodes = onnx.load(str(int8)).graph.node
    ops = {n.op_type for n in nodes}
    assert ("MatMulInteger" in ops) == (mode == "dynamic")
    assert ("QuantizeLinear" in ops) == (mode == "static")
    float_scopes = [n for n in nodes if n.name.startswith(FLOAT_SCOPES)]
    assert float_scopes and all(n.op_type not in ("MatMulInteger", "QuantizeLinear",
                                                  "DequantizeLinear") for n in float_scopes)


def test_bad_int8_requests_are_refused(tmp_path: Path) -> None:
    fp32 = export_onnx(_randomised(Student(student_config(TINY), TINY)), TINY,
                       tmp_path / "fp32.onnx", "v1")
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(fp32, tmp_path / "bad.onnx", np.zeros((0, 8, 8, 12, 2), np.float32),
                      mode="static")
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(fp32, tmp_path / "bad.onnx", mode="static")
    with pytest.raises(ValueError, match="INT8 mode"):
        quantize_int8(fp32, tmp_path / "bad.onnx", mode="fp16")


def test_latency_is_measured_in_microseconds(tmp_path: Path) -> None:
    path = export_onnx(_randomised(Student(student_config(TINY), TINY)), TINY,
                       tmp_path / "m.onnx", "v1")
    latency = measure_latency(path, TINY, runs=20, warmup=2)
    assert 0 < latency.p50_us <= latency.p99_us < 1e6


def test_exported_graph_fuses_attention_and_counts_the_same_flops_as_torch(tmp_path: Path) -> None:
    """Attention exports as ONNX Runtime's Attention (QAttention in dynamic INT8, q/k/v MatMuls +
    MultiHeadAttention in static INT8), the AR solve as Inverse; the graph
    FLOP counter (dapp.flops) sees through both and agrees with torch's counter exactly, for the
    student (fp32 and INT8) and for the teacher (whose reshapes merge batch and tokens)."""
    import onnx

    from dapp.flops import model_flops
    from distill.flops import forward_flops

    model = _randomised(Student(student_config(TINY), TINY))
    path = export_onnx(model, TINY, tmp_path / "m.onnx", "v1")
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count("Attention") == len(model.cfg.heads) and "Softmax" not in ops
    assert ops.count("Inverse") == 1
    assert model_flops(path) == forward_flops(model, TINY)
    for mode, attention in (("dynamic", "QAttention"), ("static", "MultiHeadAttention")):
        int8 = quantize_int8(path, tmp_path / f"{mode}.onnx", example_input(TINY, 16).numpy(),
                             mode=mode)
        int8_ops = [node.op_type for node in onnx.load(str(int8)).graph.node]
        assert int8_ops.count(attention) == len(model.cfg.heads), mode
        assert model_flops(int8) == forward_flops(model, TINY), mode
    assert model_flops(path, batch=3) == forward_flops(model, TINY, batch=3)
    teacher = Teacher(teacher_config(TINY), TINY)
    teacher_path = export_onnx(teacher, TINY, tmp_path / "t.onnx", "t1")
    assert model_flops(teacher_path) == forward_flops(teacher, TINY)


def test_distill_cli_offers_exactly_the_int8_modes() -> None:
    from kdran.cli import build_parser

    args = build_parser().parse_args(["distill", "--preset", "tiny", "--teacher", "t.pt",
                                      "--out", "o"])
    assert args.int8 == INT8_MODES[0] == "dynamic"
    for mode in INT8_MODES:
        assert build_parser().parse_args(["distill", "--preset", "tiny", "--teacher", "t.pt",
                                          "--out", "o", "--int8", mode]).int8 == mode
    with pytest.raises(SystemExit):
        build_parser().parse_args(["distill", "--preset", "tiny", "--teacher", "t.pt",
                                   "--out", "o", "--int8", "fp16"])
