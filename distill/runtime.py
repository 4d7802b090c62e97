"""Training runtime: seeding, torch threads and the optimizer every training loop uses."""

from __future__ import annotations

import math
import os
import random

import numpy as np
import torch

# One intra-op thread unless told otherwise: on a small shared CPU, OpenMP threads spin-waiting for
# a busy sibling core made the small matmuls of these models 20x slower (58 us -> 1.2 ms measured).
THREADS_ENV = "KDRAN_TORCH_THREADS"


def setup_torch(seed: int, threads: int | None = None) -> None:
    """Seed python, numpy and torch; set torch's intra-op threads (``threads``, else the
    ``KDRAN_TORCH_THREADS`` environment variable, else 1)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    count = threads or int(os.environ.get(THREADS_ENV, "1"))
    if count < 1:
        raise ValueError(f"torch threads must be >= 1, got {count}")
    torch.set_num_threads(count)


def make_optimizer(params: list[torch.nn.Parameter], lr: float, weight_decay: float,
                   total_steps: int, warmup_steps: int = 0
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with linear warm-up then cosine decay to 5 % of ``lr`` over ``total_steps``."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def count_params(module: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
