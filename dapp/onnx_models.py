"""Small ONNX models of the ``csi.model_io`` contract, built with ``onnx.helper`` (no torch).

They let tests and the latency benchmark run the real dApp path without a trained student:

- ``outdated_model``: repeats the last observed step (the outdated-CSI baseline as a graph);
- ``linear_model``: linear extrapolation ``h[t+k] = h[t] + k * (h[t] - h[t-1])``;
- ``synthetic_student``: a *randomly initialised* temporal MLP of student size (``hidden`` units
  shared by every antenna/RB series, residual on the last step). Its predictions are meaningless;
  it only has the shape and cost of a small student, for latency measurements.

Every model has the real beam head of the contract: ``beam_logits[b, n]`` = wideband gain
``sum_rb |w_n^H h|^2`` of the first predicted step ``h`` over the ``csi.codebook`` DFT codebook,
the same quantity as ``csi.codebook.beam_gains``. Metadata: ``csi.model_io.MODEL_METADATA_KEYS``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from csi.codebook import dft_codebook
from csi.model_io import INPUT_NAME, OUTPUT_BEAM, OUTPUT_FUTURE
from csi.presets import Preset

OPSET = 17
IR_VERSION = 8


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name=name)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _beam_head(preset: Preset, step0: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes computing ``beam_logits [b, n_beams]`` from ``step0`` float ``[b, a, r, 2]``.

    With ``C = Cr + jCi`` the codebook ``[n_beams, a]``, ``C^H h`` in real arithmetic is
    ``[[Cr, Ci], [-Ci, Cr]] @ [hr; hi]``; squaring and summing over RBs and re/im gives the gain.
    """
    cb = dft_codebook(preset)
    cr, ci = cb.real.astype(np.float32), cb.imag.astype(np.float32)
    proj = np.block([[cr, ci], [-ci, cr]]).astype(np.float32)           # [2n, 2a]
    n_beams, n_ant = cb.shape
    inits = [_const("bh_proj", proj), _const("bh_shape_in", _i64(0, 2 * n_ant, preset.n_rb)),
             _const("bh_axis_rb", _i64(2)), _const("bh_shape_ri", _i64(0, 2, n_beams)),
             _const("bh_axis_ri", _i64(1))]
    nodes = [
        helper.make_node("Transpose", [step0], ["bh_t"], perm=[0, 3, 1, 2]),   # [b, 2, a, r]
        helper.make_node("Reshape", ["bh_t", "bh_shape_in"], ["bh_x"]),        # [b, 2a, r]
        helper.make_node("MatMul", ["bh_proj", "bh_x"], ["bh_p"]),             # [b, 2n, r]
        helper.make_node("Mul", ["bh_p", "bh_p"], ["bh_sq"]),
        helper.make_node("ReduceSum", ["bh_sq", "bh_axis_rb"], ["bh_sum"], keepdims=0),
        helper.make_node("Reshape", ["bh_sum", "bh_shape_ri"], ["bh_ri"]),     # [b, 2, n]
        helper.make_node("ReduceSum", ["bh_ri", "bh_axis_ri"], [OUTPUT_BEAM], keepdims=0),
    ]
    return nodes, inits


def _io(preset: Preset) -> tuple[onnx.ValueInfoProto, list[onnx.ValueInfoProto]]:
    a, r = preset.n_ant, preset.n_rb
    x = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                      ["batch", preset.history, a, r, 2])
    outs = [helper.make_tensor_value_info(OUTPUT_FUTURE, TensorProto.FLOAT,
                                          ["batch", preset.horizon, a, r, 2]),
            helper.make_tensor_value_info(OUTPUT_BEAM, TensorProto.FLOAT,
                                          ["batch", preset.n_beams])]
    return x, outs


def _last_steps(preset: Preset, count: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes slicing the newest ``count`` steps of the input into ``last{i}`` ``[b, a, r, 2]``
    (``last0`` newest)."""
    nodes, inits = [], [_const("ax_time", _i64(1))]
    t = preset.history
    for i in range(count):
        inits += [_const(f"start{i}", _i64(t - 1 - i)), _const(f"end{i}", _i64(t - i))]
        nodes += [helper.make_node("Slice", [INPUT_NAME, f"start{i}", f"end{i}", "ax_time"],
                                   [f"slice{i}"]),
                  helper.make_node("Squeeze", [f"slice{i}", "ax_time"], [f"last{i}"])]
    return nodes, inits


def _finish(preset: Preset, name: str, version: str, nodes: list[onnx.NodeProto],
            inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    """Add the beam head (on ``step0``), I/O and metadata; check and return the model."""
    head_nodes, head_inits = _beam_head(preset, "step0")
    x, outs = _io(preset)
    graph = helper.make_graph(nodes + head_nodes, name, [x], outs, inits + head_inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="kdran.dapp.onnx_models")
    model.ir_version = IR_VERSION
    meta = {"kdran_preset": preset.name, "history": preset.history, "horizon": preset.horizon,
            "n_ant": preset.n_ant, "n_rb": preset.n_rb, "n_beams": preset.n_beams,
            "version": version}
    helper.set_model_props(model, {k: str(v) for k, v in meta.items()})
    onnx.checker.check_model(model, full_check=True)
    return model


def outdated_model(preset: Preset, version: str) -> onnx.ModelProto:
    """Repeat the newest step ``horizon`` times: ``future[:, k] = history[:, -1]``."""
    nodes, inits = _last_steps(preset, 1)
    inits.append(_const("reps", _i64(1, preset.horizon, 1, 1, 1)))
    nodes += [helper.make_node("Identity", ["last0"], ["step0"]),
              helper.make_node("Tile", ["slice0", "reps"], [OUTPUT_FUTURE])]
    return _finish(preset, "outdated", version, nodes, inits)


def linear_model(preset: Preset, version: str) -> onnx.ModelProto:
    """Linear extrapolation: ``future[:, k] = h[-1] + (k + 1) * (h[-1] - h[-2])``."""
    nodes, inits = _last_steps(preset, 2)
    ramp = np.arange(1, preset.horizon + 1, dtype=np.float32).reshape(1, -1, 1, 1, 1)
    inits.append(_const("ramp", ramp))
    nodes += [helper.make_node("Sub", ["slice0", "slice1"], ["delta"]),        # [b, 1, a, r, 2]
              helper.make_node("Mul", ["delta", "ramp"], ["steps"]),           # [b, h, a, r, 2]
              helper.make_node("Add", ["slice0", "steps"], [OUTPUT_FUTURE]),
              helper.make_node("Add", ["last0", "last0"], ["twice"]),
              helper.make_node("Sub", ["twice", "last1"], ["step0"])]
    return _finish(preset, "linear", version, nodes, inits)


def synthetic_student(preset: Preset, version: str, hidden: int = 256,
                      seed: int = 0) -> onnx.ModelProto:
    """Random temporal MLP: per series ``[history*2] -> hidden (ReLU) -> [horizon*2]`` + last step.

    Parameters: ``2*history*hidden + hidden + hidden*2*horizon + 2*horizon``; FLOPs per sample:
    ``see synthetic_student_flops``. Weights are random (``seed``): for latency, not accuracy.
    """
    t, h, a, r = preset.history, preset.horizon, preset.n_ant, preset.n_rb
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((2 * t, hidden)) / np.sqrt(2 * t)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, 2 * h)) * 0.01 / np.sqrt(hidden)).astype(np.float32)
    inits = [_const("w1", w1), _const("b1", np.zeros(hidden, np.float32)), _const("w2", w2),
             _const("b2", np.zeros(2 * h, np.float32)),
             _const("series_shape", _i64(0, a, r, 2 * t)),
             _const("out_shape", _i64(0, a, r, h, 2)), _const("ax_time", _i64(1)),
             _const("first_start", _i64(0)), _const("first_end", _i64(1)),
             _const("last_start", _i64(t - 1)), _const("last_end", _i64(t))]
    nodes = [
        helper.make_node("Transpose", [INPUT_NAME], ["series_t"], perm=[0, 2, 3, 1, 4]),
        helper.make_node("Reshape", ["series_t", "series_shape"], ["series"]),  # [b, a, r, 2t]
        helper.make_node("MatMul", ["series", "w1"], ["z1"]),
        helper.make_node("Add", ["z1", "b1"], ["z1b"]),
        helper.make_node("Relu", ["z1b"], ["a1"]),
        helper.make_node("MatMul", ["a1", "w2"], ["z2"]),
        helper.make_node("Add", ["z2", "b2"], ["z2b"]),                         # [b, a, r, 2h]
        helper.make_node("Reshape", ["z2b", "out_shape"], ["res5"]),            # [b, a, r, h, 2]
        helper.make_node("Transpose", ["res5"], ["residual"], perm=[0, 3, 1, 2, 4]),
        helper.make_node("Slice", [INPUT_NAME, "last_start", "last_end", "ax_time"], ["last"]),
        helper.make_node("Add", ["last", "residual"], [OUTPUT_FUTURE]),         # [b, h, a, r, 2]
        helper.make_node("Slice", [OUTPUT_FUTURE, "first_start", "first_end", "ax_time"],
                         ["first"]),
        helper.make_node("Squeeze", ["first", "ax_time"], ["step0"]),
    ]
    return _finish(preset, "synthetic_student", version, nodes, inits)


def synthetic_student_flops(preset: Preset, hidden: int = 256) -> int:
    """Multiply-adds x 2 per sample of ``synthetic_student`` (both MLP layers and the beam head)."""
    series = preset.n_ant * preset.n_rb
    mlp = series * (2 * preset.history * hidden + hidden * 2 * preset.horizon)
    head = 2 * preset.n_beams * 2 * preset.n_ant * preset.n_rb
    return 2 * (mlp + head)
