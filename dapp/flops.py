"""FLOP count of an ONNX model from its graph (shape inference at a fixed batch) and the nominal
peak of this CPU, for the latency benchmark's "fraction of peak".

Counted: MatMul / Gemm / Conv and their quantised forms (MatMulInteger, QLinearMatMul,
ConvInteger, QLinearConv) and the two products inside ONNX Runtime's fused MultiHeadAttention,
as ``2 x multiply-adds``; element-wise ops are ignored (they are
memory-bound and small next to the products). The peak is nominal: clock x SIMD width x FMA
units, from /proc/cpuinfo (``FLOPS_PER_CYCLE``), not a measured roofline.
"""

from __future__ import annotations

import math
import platform
from pathlib import Path

import onnx
from onnx import shape_inference

_MATMULS = {"MatMul", "MatMulInteger", "QLinearMatMul"}
_CONVS = {"Conv", "ConvInteger", "QLinearConv"}
# fp32 FLOPs per cycle per core: 2 FMA units x SIMD lanes x 2 (multiply + add).
FLOPS_PER_CYCLE = {"avx512f": 2 * 16 * 2, "avx2": 2 * 8 * 2, "sse": 2 * 4 * 2}


_SHAPE_OF_FIRST_INPUT = {"Inverse", "MultiHeadAttention"}
"""ONNX Runtime contrib ops (``com.microsoft``) that ONNX shape inference does not know, whose
output has the shape of their first input (a batch of matrices; packed ``[b, tokens, width]``
attention)."""


def _collect(inferred: onnx.ModelProto
             ) -> tuple[dict[str, list[int | None]], dict[str, int]]:
    """(shape, element type) of every value ONNX shape inference resolved; ``None`` for a
    dimension it left symbolic or unknown."""
    shapes: dict[str, list[int | None]] = {}
    types = {}
    for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        tensor = value.type.tensor_type
        if not tensor.HasField("shape"):
            continue
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None
                              for d in tensor.shape.dim]
        types[value.name] = tensor.elem_type
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
        types[init.name] = init.data_type
    return shapes, types


def _shapes(model: onnx.ModelProto, batch: int) -> dict[str, list[int]]:
    """Every value's shape at ``batch``. A dimension inference leaves symbolic is the batch: the
    only dynamic axis of a ``csi.model_io`` model (inference loses it behind a ``Reshape`` to
    ``-1``)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch
    while True:   # infer, give the contrib ops their outputs' shapes, infer again
        shapes, types = _collect(shape_inference.infer_shapes(model, data_prop=True))
        missing = {node.output[0]: node.input[0] for node in model.graph.node
                   if node.op_type in _SHAPE_OF_FIRST_INPUT
                   and _unknown(shapes.get(node.output[0]))
                   and not _unknown(shapes.get(node.input[0]))}
        if not missing:
            return {name: [batch if d is None else d for d in dims]
                    for name, dims in shapes.items()}
        kept = [v for v in model.graph.value_info if v.name not in missing]
        del model.graph.value_info[:]
        model.graph.value_info.extend(kept)
        for output, source in missing.items():
            model.graph.value_info.append(onnx.helper.make_tensor_value_info(
                output, types[source], shapes[source]))


def _unknown(shape: list[int | None] | None) -> bool:
    return shape is None or not shape or None in shape


def _attention_flops(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    """Scores ``q k^T`` and mixing ``softmax v`` of a packed ``[b, n, width]`` attention:
    ``2 x 2 x b n^2 width``."""
    q = shapes.get(node.input[0], [])
    return 4 * math.prod(q) * q[1] if len(q) == 3 else 0


def model_flops(path: str | Path, batch: int = 1) -> int:
    """FLOPs of one forward pass at ``batch`` (0 where a shape stays unknown)."""
    model = onnx.load(str(path))
    shapes = _shapes(model, batch)
    total = 0
    for node in model.graph.node:
        if node.op_type in _MATMULS or node.op_type == "Gemm":
            a_name = node.input[0]
            out = shapes.get(node.output[0], [])
            k = shapes.get(a_name, [0])[-1]
            if node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute):
                k = shapes.get(a_name, [0, 0])[-2]
            total += 2 * math.prod(out) * k if out and k else 0
        elif node.op_type == "MultiHeadAttention":
            total += _attention_flops(node, shapes)
        elif node.op_type in _CONVS:
            w_index = 3 if node.op_type == "QLinearConv" else 1
            weight = shapes.get(node.input[w_index], [])
            out = shapes.get(node.output[0], [])
            if weight and out:
                total += 2 * math.prod(out) * math.prod(weight[1:])
    return total


def cpu_peak_flops_per_core() -> tuple[float, str]:
    """(nominal fp32 FLOP/s of one core, description) from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return float("nan"), platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    mhz = float(fields.get("cpu MHz", "nan"))
    isa = next((isa for isa in FLOPS_PER_CYCLE if isa in flags), "sse")
    peak = mhz * 1e6 * FLOPS_PER_CYCLE[isa]
    name = fields.get("model name", platform.processor() or "unknown CPU")
    return peak, f"{name} @ {mhz:.0f} MHz, {isa}"
