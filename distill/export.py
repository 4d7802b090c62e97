"""ONNX export (fixed opset, dynamic batch, task metadata) and INT8 static quantization.

``export_onnx`` writes a model with input ``history`` ``[batch, history, antenna, rb, 2]`` and
outputs ``future`` / ``beam_logits`` as in ``csi.model_io``, the batch axis dynamic, and the
``MODEL_METADATA_KEYS`` in ``metadata_props``. ``parity_error`` compares ONNX Runtime fp32 with
torch (max absolute error over both outputs). ``export_torch_program`` saves a ``torch.export``
program (the latency benchmark's torch-eager teacher row).

``quantize_int8`` runs ONNX Runtime's post-training quantization after its pre-processing (shape
inference and graph optimisation); only MatMul/Gemm and the fused attention (its q/k/v projection)
are quantized, element-wise ops, Softmax and LayerNorm stay in float (measured: quantizing Add/Mul
too made the model slower, not faster, on an AVX2 CPU). Two modes (``INT8_MODES``), both with
per-channel int8 weights:

- ``dynamic`` (the default): each quantized MatMul's input is quantized to uint8 when it runs, from
  its own range, and ONNX Runtime fuses quantize, integer product, rescale and bias into
  ``DynamicQuantizeLinear`` + ``MatMulIntegerToFloat``; ``com.microsoft.Attention`` becomes
  ``QAttention``. No calibration set, no range that a new radio environment can saturate.
- ``static``: QDQ format with uint8 activation ranges fixed by MinMax calibration on a calibration
  set of model inputs (what ``distill.qat`` mimics). Every quantized MatMul then carries
  Quantize/Dequantize nodes, which at the student's size cost more than the integer products save.
  QDQ has no Attention quantizer: each ``Attention`` is first split back into its q/k/v MatMuls
  and a float ``MultiHeadAttention`` (``split_attention``), so the projections are quantized.

Measured 2026-12-05 on the std student (2-core AMD EPYC VM, one thread, 4000 calls): dynamic
p50/p99 153/173-178 µs, static 178/198-204 µs, fp32 155/177 µs; test NMSE -8.463 / -8.462 /
-8.465 dB.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch

from csi.model_io import INPUT_NAME, OUTPUT_BEAM, OUTPUT_FUTURE
from csi.presets import Preset

OPSET = 18
QUANTIZED_OPS: tuple[str, ...] = ("MatMul", "Gemm", "Attention")
FLOAT_SCOPES: tuple[str, ...] = ("/prior/", "/beams/")
"""Node-name prefixes (torch module scopes) never quantized: the in-graph AR/Wiener fit and
forecast (``distill.models.ar_prior``) must keep their dynamic range — quantized, its forecast
saturates at SRS SNRs and speeds outside the calibration set (measured at std: INT8 NMSE -2.3 dB
at 30 dB SNR against -11.0 dB in fp32); the codebook projection (``distill.models.beams``) is
exact constants with nothing to learn, and quantized, ONNX Runtime dequantized its weight on every
call (the most expensive node of the INT8 student)."""


def model_metadata(preset: Preset, version: str) -> dict[str, str]:
    """The ``csi.model_io.MODEL_METADATA_KEYS`` values for a model of ``preset``."""
    return {"kdran_preset": preset.name, "history": str(preset.history),
            "horizon": str(preset.horizon), "n_ant": str(preset.n_ant),
            "n_rb": str(preset.n_rb), "n_beams": str(preset.n_beams), "version": version}


def set_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Replace the model's ``metadata_props`` with ``metadata`` (in place)."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def read_metadata(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def example_input(preset: Preset, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random unit-power input ``[batch, history, antenna, rb, 2]``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, preset.history, preset.n_ant, preset.n_rb, 2, generator=gen)
    return x / x.pow(2).mean().sqrt()


def export_onnx(model: torch.nn.Module, preset: Preset, path: Path, version: str) -> Path:
    """Export ``model`` (eval mode) to ``path`` as one self-contained ONNX file.

    Uses torch's TorchScript-based exporter (``dynamo=False``): with torch pinned at 2.13 it is
    still supported, and it exports these models in well under a second where the torch.export
    path took 7-17 s per model on the CI machine (measured), which the tiny pipeline cannot afford.
    """
    model = model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    batch_axis = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        # Token counts are read as plain ints on purpose (static reshapes; see blocks.Attention).
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model, (example_input(preset),), str(path), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_FUTURE, OUTPUT_BEAM],
            dynamic_axes={INPUT_NAME: batch_axis, OUTPUT_FUTURE: batch_axis,
                          OUTPUT_BEAM: batch_axis})
    set_metadata(path, model_metadata(preset, version))
    onnx.checker.check_model(str(path))
    return path


def export_torch_program(model: torch.nn.Module, preset: Preset, path: Path) -> Path:
    """Save ``model`` (eval mode) as a ``torch.export`` program with a dynamic batch
    (``torch.export.save``, ``.pt2``): what ``kdran bench latency --teacher-torch`` runs eagerly
    without the model's source code. Input and outputs as ``export_onnx``'s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.export.export(model.eval(), (example_input(preset),),
                                      dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def ort_session(path: Path, threads: int = 1) -> object:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity_error(model: torch.nn.Module, path: Path, x: torch.Tensor) -> float:
    """Max absolute difference between torch and ONNX Runtime fp32 over both outputs for ``x``."""
    with torch.no_grad():
        expected = [t.numpy() for t in model.eval()(x)]
    got = ort_session(path).run(None, {INPUT_NAME: x.numpy()})  # type: ignore[attr-defined]
    return float(max(np.max(np.abs(e - g)) for e, g in zip(expected, got, strict=True)))


class _Calibration:
    """A ``CalibrationDataReader`` (ORT duck-types it: ``get_next``) over model inputs in small
    batches."""

    def __init__(self, inputs: np.ndarray, batch: int = 16) -> None:
        self._batches: Iterator[np.ndarray] = iter(
            [inputs[i:i + batch] for i in range(0, len(inputs), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        nxt = next(self._batches, None)
        return None if nxt is None else {INPUT_NAME: nxt.astype(np.float32)}


INT8_MODES: tuple[str, ...] = ("dynamic", "static")


def quantize_int8(fp32_path: Path, out_path: Path, calibration: np.ndarray | None = None,
                  mode: str = "dynamic") -> Path:
    """INT8 quantization of ``fp32_path`` (``mode`` in ``INT8_MODES``; ``static`` is calibrated
    on ``calibration``, float32 ``[n, history, antenna, rb, 2]`` model inputs); the MatMul/Gemm
    of the network are quantized, those under ``FLOAT_SCOPES`` stay float; metadata is carried
    over."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    if mode not in INT8_MODES:
        raise ValueError(f"INT8 mode {mode!r} is not one of {INT8_MODES}")
    if mode == "static" and (calibration is None or calibration.ndim != 5
                             or len(calibration) == 0):
        raise ValueError("static INT8 needs calibration inputs, a non-empty [n, t, a, r, 2] "
                         f"array; got {None if calibration is None else calibration.shape}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        keep_float = [node.name for node in model.graph.node
                      if node.name.startswith(FLOAT_SCOPES)]
        if mode == "static":
            assert calibration is not None
            onnx.save(split_attention(model), str(prepared))
            _quantize_static(prepared, out_path, calibration, keep_float)
        else:
            quantize_dynamic(str(prepared), str(out_path), weight_type=QuantType.QInt8,
                             per_channel=True, nodes_to_exclude=keep_float,
                             op_types_to_quantize=list(QUANTIZED_OPS))
    set_metadata(out_path, read_metadata(fp32_path))
    return out_path


def _quantize_static(prepared: Path, out_path: Path, calibration: np.ndarray,
                     keep_float: list[str]) -> None:
    """ONNX Runtime static QDQ quantization, MinMax-calibrated on ``calibration``."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quantize_static(str(prepared), str(out_path), _Calibration(calibration),
                    nodes_to_exclude=keep_float, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                    op_types_to_quantize=list(QUANTIZED_OPS))


def split_attention(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every ``com.microsoft.Attention`` node (input ``x``, packed weight
    ``[dim, 3 * inner]`` and bias ``[3 * inner]`` initializers, ``distill.models.blocks``) replaced
    by its q/k/v ``MatMul`` + ``Add`` and one ``com.microsoft.MultiHeadAttention``: the same
    function, in operators that ONNX Runtime's QDQ quantizer knows. Node names keep the
    Attention node's scope (``FLOAT_SCOPES`` still applies). Modified in place and returned."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type != "Attention" or node.domain != "com.microsoft":
            nodes.append(node)
            continue
        x, weight_name, bias_name = node.input[:3]
        weight = onnx.numpy_helper.to_array(inits[weight_name])
        bias = onnx.numpy_helper.to_array(inits[bias_name])
        inner = weight.shape[1] // 3
        scope = node.name.rsplit("/", 1)[0]
        parts = []
        for index, part in enumerate("qkv"):
            columns = slice(index * inner, (index + 1) * inner)
            w_name, b_name = f"{scope}/{part}/weight", f"{scope}/{part}/bias"
            graph.initializer.extend([
                onnx.numpy_helper.from_array(np.ascontiguousarray(weight[:, columns]), w_name),
                onnx.numpy_helper.from_array(bias[columns], b_name)])
            product, out = f"{scope}/{part}/MatMul_output", f"{scope}/{part}/output"
            nodes += [onnx.helper.make_node("MatMul", [x, w_name], [product],
                                            name=f"{scope}/{part}/MatMul"),
                      onnx.helper.make_node("Add", [product, b_name], [out],
                                            name=f"{scope}/{part}/Add")]
            parts.append(out)
        nodes.append(onnx.helper.make_node(
            "MultiHeadAttention", parts, list(node.output), name=f"{scope}/MultiHeadAttention",
            domain="com.microsoft", num_heads=next(a.i for a in node.attribute
                                                   if a.name == "num_heads")))
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model
