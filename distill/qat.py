"""Quantisation-aware training: fake-quant wrappers on the ``nn.Linear`` layers of a model.

The wrappers mimic what ``distill.export.quantize_int8`` in ``static`` mode (ONNX Runtime QDQ
INT8, MinMax calibration) does to the same layers, so a student trained with them is trained for
the INT8 model it will become. ORT quantizes both the inputs and the output of every MatMul/Gemm;
the torch exporter turns a linear layer on a 2-D input into one Gemm (bias inside) and on a
higher-rank input into MatMul + Add (bias after the quantized product). So, per linear layer:

- weight: int8, symmetric, zero point 0, range ``[-127, 127]``, scale ``max|w| / 127`` per output
  channel (``per_channel=True``, as ``quantize_int8`` sets it) or per tensor; recomputed from the
  current weights on every forward, as ORT does once at export;
- activations, each uint8, asymmetric, per tensor, range extended to include 0,
  ``scale = (max - min) / 255``, ``zero point = round(-min / scale)``: the input; the product
  (``x W^T`` before the bias, or the Gemm output with it). Optionally (``attention_operands``,
  off by default) also the q/k/v outputs after the bias: they were operands of quantized
  attention score / mixing MatMuls until the export fused the attention; in static INT8 it is
  ONNX Runtime's float ``MultiHeadAttention`` node after quantized q/k/v MatMuls
  (``distill.export.split_attention``), which the quantizer leaves alone.

``calibrate`` observes each activation's global min/max over a calibration set with the float model
(as ORT's MinMax calibrator does); training then follows the ranges with an exponential moving
average. Rounding is ``torch.fake_quantize_per_tensor_affine`` /
``torch.fake_quantize_per_channel_affine``, whose gradient is the straight-through estimator
(identity inside the clamp range, zero outside); ranges come from ``torch.ao.quantization``
observers. Not mimicked (no linear layer there): the codebook
projection of the beam scores, any float32 MatMul inside ``FLOAT_MODULES``, and the int32 bias of a
Gemm (negligible).

``attach_fake_quant`` swaps each ``nn.Linear`` for a ``QatLinear`` that holds the *same* module (so
the optimizer trains the original parameters); ``remove_fake_quant`` puts the original modules back,
leaving module tree, state dict and ONNX graph exactly as before. Modules inside ``FLOAT_MODULES``
(the ``ArPrior``) are never wrapped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization import MinMaxObserver, MovingAverageMinMaxObserver

from distill.models.ad_prior import AngleDelayPrior
from distill.models.ar_prior import ArPrior
from distill.models.blocks import Attention

FLOAT_MODULES: tuple[type[nn.Module], ...] = (ArPrior, AngleDelayPrior)
WEIGHT_QMAX = 127                      # symmetric int8 weights: [-127, 127]
ACT_QMIN, ACT_QMAX = 0, 255            # uint8 activations
_EPS = torch.finfo(torch.float32).eps


@dataclass(frozen=True)
class QatConfig:
    """Fake-quantisation settings (defaults: those of ``distill.export.quantize_int8``'s static
    mode)."""

    per_channel: bool = True
    products: bool = True
    attention_operands: bool = False
    range_momentum: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.range_momentum <= 1.0:
            raise ValueError(f"range_momentum must be in (0, 1], got {self.range_momentum}")


class ActivationFakeQuant(nn.Module):
    """Per-tensor uint8 fake quantisation of an activation with an observed range.

    Calibrating: global min/max (``MinMaxObserver``), output unchanged. Training: the range follows
    a moving average (``MovingAverageMinMaxObserver``), output fake-quantised. Eval: fake-quantised
    with the stored range.
    """

    def __init__(self, momentum: float) -> None:
        super().__init__()
        self.calibration = MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                                          quant_min=ACT_QMIN, quant_max=ACT_QMAX)
        self.running = MovingAverageMinMaxObserver(
            averaging_constant=momentum, dtype=torch.quint8, qscheme=torch.per_tensor_affine,
            quant_min=ACT_QMIN, quant_max=ACT_QMAX)

    @property
    def observed(self) -> bool:
        """Whether a range exists (after ``calibrate``, ``set_range`` or a training step)."""
        return bool(torch.isfinite(self.running.min_val).item())

    def range(self) -> tuple[float, float]:
        """The current (min, max) of the activation."""
        return float(self.running.min_val), float(self.running.max_val)

    def set_range(self, low: float, high: float) -> None:
        """Set the range used for fake quantisation (and as the start of the moving average)."""
        if not low <= high:
            raise ValueError(f"activation range needs min <= max, got ({low}, {high})")
        self.running.min_val.fill_(low)
        self.running.max_val.fill_(high)

    def finish_calibration(self) -> None:
        """Adopt the calibrated global min/max as the range."""
        if not torch.isfinite(self.calibration.min_val):
            raise RuntimeError("no calibration data reached this activation")
        self.set_range(float(self.calibration.min_val), float(self.calibration.max_val))

    def forward(self, x: torch.Tensor, calibrating: bool = False) -> torch.Tensor:
        if calibrating:
            self.calibration(x.detach())
            return x
        if self.training:
            self.running(x.detach())
        elif not self.observed:
            raise RuntimeError("fake-quantised model has no activation ranges: calibrate it "
                               "(distill.qat.calibrate) before evaluating")
        scale, zero_point = self.running.calculate_qparams()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point.to(torch.int32),
                                                     ACT_QMIN, ACT_QMAX)


def fake_quant_weight(weight: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Symmetric int8 fake quantisation of ``weight`` ``[out, in]`` (per output channel or per
    tensor), scale ``max|w| / 127``; gradient by the straight-through estimator."""
    if per_channel:
        scale = (weight.detach().abs().amax(dim=1) / WEIGHT_QMAX).clamp_min(_EPS)
        zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -WEIGHT_QMAX,
                                                      WEIGHT_QMAX)
    scale_t = (weight.detach().abs().amax() / WEIGHT_QMAX).clamp_min(_EPS).reshape(1)
    zero_t = torch.zeros(1, dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_tensor_affine(weight, scale_t, zero_t, -WEIGHT_QMAX,
                                                 WEIGHT_QMAX)


class QatLinear(nn.Module):
    """An ``nn.Linear`` with fake-quantised input, weight, product and (optionally) output."""

    def __init__(self, linear: nn.Linear, cfg: QatConfig, operand: bool) -> None:
        super().__init__()
        self.linear = linear
        self.per_channel = cfg.per_channel
        self.calibrating = False
        self.input_fq = ActivationFakeQuant(cfg.range_momentum)
        self.product_fq = ActivationFakeQuant(cfg.range_momentum) if cfg.products else None
        self.operand_fq = ActivationFakeQuant(cfg.range_momentum) if operand else None

    def activations(self) -> dict[str, ActivationFakeQuant]:
        """The activation fake-quants by role (``input``, ``product``, ``operand``)."""
        found = {"input": self.input_fq, "product": self.product_fq, "operand": self.operand_fq}
        return {role: fq for role, fq in found.items() if fq is not None}

    def quantized_weight(self) -> torch.Tensor:
        """The weight as the INT8 model will see it (fake-quantised)."""
        return fake_quant_weight(self.linear.weight, self.per_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in]`` -> ``[..., out]``; float throughout while calibrating."""
        cal, bias = self.calibrating, self.linear.bias
        x = self.input_fq(x, cal)
        weight = self.linear.weight if cal else self.quantized_weight()
        if self.product_fq is None:
            y = F.linear(x, weight, bias)
        elif x.dim() == 2:                                     # exported as Gemm: bias inside
            y = self.product_fq(F.linear(x, weight, bias), cal)
        else:                                                  # exported as MatMul + Add
            y = self.product_fq(F.linear(x, weight), cal)
            y = y if bias is None else y + bias
        return y if self.operand_fq is None else self.operand_fq(y, cal)


def _float_only(name: str, model: nn.Module) -> bool:
    """Whether module ``name`` lies inside one of the ``FLOAT_MODULES``."""
    parts = name.split(".")
    return any(isinstance(model.get_submodule(".".join(parts[:i])), FLOAT_MODULES)
               for i in range(len(parts)))


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, new)


def wrappers(model: nn.Module) -> dict[str, QatLinear]:
    """The ``QatLinear`` wrappers of ``model`` by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, QatLinear)}


def attach_fake_quant(model: nn.Module, cfg: QatConfig | None = None) -> list[str]:
    """Wrap every ``nn.Linear`` of ``model`` (in place, outside ``FLOAT_MODULES``) in a
    ``QatLinear``; return the wrapped module names. Calibrate before evaluating."""
    cfg = cfg or QatConfig()
    if wrappers(model):
        raise ValueError("model already carries fake-quant wrappers")
    operands = {id(getattr(m, part)) for m in model.modules() if isinstance(m, Attention)
                for part in ("q", "k", "v")} if cfg.attention_operands else set()
    names = [name for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and not _float_only(name, model)]
    if not names:
        raise ValueError("model has no nn.Linear layer to fake-quantise")
    for name in names:
        linear = model.get_submodule(name)
        assert isinstance(linear, nn.Linear)
        wrapper = QatLinear(linear, cfg, operand=id(linear) in operands)
        _swap(model, name, wrapper.train(linear.training))
    return names


def remove_fake_quant(model: nn.Module) -> list[str]:
    """Put the original ``nn.Linear`` modules back (in place); return their names."""
    found = wrappers(model)
    if not found:
        raise ValueError("model carries no fake-quant wrappers")
    for name, wrapper in found.items():
        _swap(model, name, wrapper.linear)
    return list(found)


@contextmanager
def _calibrating(model: nn.Module) -> Iterator[dict[str, QatLinear]]:
    found = wrappers(model)
    if not found:
        raise ValueError("model carries no fake-quant wrappers: attach_fake_quant first")
    for wrapper in found.values():
        wrapper.calibrating = True
    try:
        yield found
    finally:
        for wrapper in found.values():
            wrapper.calibrating = False


def calibrate(model: nn.Module, inputs: torch.Tensor, batch_size: int = 16) -> None:
    """Observe every activation range on ``inputs`` (model inputs ``[n, ...]``, float model, as
    ORT's MinMax calibration); the ranges then drive the fake quantisation."""
    if len(inputs) == 0:
        raise ValueError("calibration needs at least one input")
    was_training = model.training
    model.eval()
    with _calibrating(model) as found, torch.no_grad():
        for fq in (fq for w in found.values() for fq in w.activations().values()):
            fq.calibration.reset_min_max_vals()
        for start in range(0, len(inputs), batch_size):
            model(inputs[start:start + batch_size])
        for wrapper in found.values():
            for fq in wrapper.activations().values():
                fq.finish_calibration()
    model.train(was_training)


def activation_ranges(model: nn.Module) -> dict[str, tuple[float, float]]:
    """Every activation range as ``{"<linear name>.<input|output>": (min, max)}``."""
    return {f"{name}.{role}": fq.range() for name, w in wrappers(model).items()
            for role, fq in w.activations().items()}


def set_activation_ranges(model: nn.Module, ranges: dict[str, tuple[float, float]]) -> None:
    """Set the activation ranges of ``model`` from ``activation_ranges`` output (same names)."""
    mine = {f"{name}.{role}": fq for name, w in wrappers(model).items()
            for role, fq in w.activations().items()}
    if set(mine) != set(ranges):
        raise ValueError(f"activation ranges do not fit the model: missing "
                         f"{sorted(set(mine) - set(ranges))}, unknown "
                         f"{sorted(set(ranges) - set(mine))}")
    for key, (low, high) in ranges.items():
        mine[key].set_range(low, high)


def snap_weights(model: nn.Module) -> None:
    """Replace every wrapped weight by its fake-quantised value (on the int8 grid), in place."""
    found = wrappers(model)
    if not found:
        raise ValueError("model carries no fake-quant wrappers: attach_fake_quant first")
    with torch.no_grad():
        for wrapper in found.values():
            wrapper.linear.weight.copy_(wrapper.quantized_weight())
