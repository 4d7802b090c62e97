"""FLOP count of an ONNX model from its graph (operand shapes observed in one ONNX Runtime run at
a fixed batch) and the nominal peak of this CPU, for the latency benchmark's "fraction of peak".

Counted: MatMul / Gemm / Conv and their quantised forms (MatMulInteger, QLinearMatMul,
ConvInteger, QLinearConv), the two products inside ONNX Runtime's fused MultiHeadAttention, and
inside its Attention / QAttention also the packed q/k/v projection, as ``2 x multiply-adds``;
element-wise ops are ignored (they are memory-bound and small next to the products). The peak
is nominal: clock x SIMD width x FMA units, from /proc/cpuinfo (``FLOPS_PER_CYCLE``), not a
measured roofline.
"""

from __future__ import annotations

import math
import platform
from pathlib import Path

import numpy as np
import onnx

_MATMULS = {"MatMul", "MatMulInteger", "QLinearMatMul"}
_CONVS = {"Conv", "ConvInteger", "QLinearConv"}
# fp32 FLOPs per cycle per core: 2 FMA units x SIMD lanes x 2 (multiply + add).
FLOPS_PER_CYCLE = {"avx512f": 2 * 16 * 2, "avx2": 2 * 8 * 2, "sse": 2 * 4 * 2}


_ATTENTIONS = {"Attention", "QAttention"}
_COUNTED = _MATMULS | _CONVS | _ATTENTIONS | {"Gemm", "MultiHeadAttention"}
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                "tensor(int64)": np.int64}


def _shapes(model: onnx.ModelProto, batch: int) -> dict[str, list[int]]:
    """The shape of every operand of the counted nodes, observed in one ONNX Runtime run on a
    zero input of batch ``batch``: exact where static inference loses dimensions (reshapes to
    ``-1`` that merge batch and tokens, contrib ops such as ``Inverse`` and the
    attention ops that ONNX inference does not know)."""
    import onnxruntime as ort

    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    wanted = {name for node in model.graph.node if node.op_type in _COUNTED
              for name in (*node.input, *node.output) if name and name not in shapes}
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=name) for name in sorted(wanted - present))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(probe.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feeds = {}
    for value in session.get_inputs():
        dims = [batch if not isinstance(d, int) else d for d in value.shape]
        feeds[value.name] = np.zeros(dims, _NUMPY_TYPES.get(value.type, np.float32))
    names = [o.name for o in session.get_outputs()]
    with np.errstate(all="ignore"):
        values = session.run(names, feeds)
    shapes.update({name: list(np.shape(v)) for name, v in zip(names, values, strict=True)})
    return shapes


def _attention_flops(q: list[int]) -> int:
    """Scores ``q k^T`` and mixing ``softmax v`` of packed ``[b, n, width]`` queries:
    ``2 x 2 x b n^2 width``."""
    return 4 * math.prod(q) * q[1] if len(q) == 3 else 0


def _fused_attention_flops(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    """(Q)Attention: input ``[b, n, dim]`` times packed weight ``[dim, 3 width]``, then the
    attention of ``width``-wide queries."""
    x, weight = shapes.get(node.input[0], []), shapes.get(node.input[1], [])
    if len(x) != 3 or len(weight) != 2:
        return 0
    return 2 * math.prod(x) * weight[1] + _attention_flops([*x[:2], weight[1] // 3])


def model_flops(path: str | Path, batch: int = 1) -> int:
    """FLOPs of one forward pass at ``batch``."""
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
            total += _attention_flops(shapes.get(node.input[0], []))
        elif node.op_type in _ATTENTIONS:
            total += _fused_attention_flops(node, shapes)
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
