"""FLOPs of one forward pass, counted by torch's own ``torch.utils.flop_counter.FlopCounterMode``.

The counter records every matmul / linear / batched-matmul FLOP (2 per multiply-accumulate) that
actually runs; element-wise ops (GELU, softmax, layer norm, additions) are not counted, as usual.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from csi.presets import Preset
from distill.export import example_input


def forward_flops(model: torch.nn.Module, preset: Preset, batch: int = 1) -> int:
    """Matmul FLOPs of ``model(history)`` for a batch of ``batch`` sequences."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(example_input(preset, batch))
    return int(counter.get_total_flops())
