"""Structured pruning of the student: whole attention heads and whole MLP channels, by L2 norm.

Importance of head ``h`` in a layer: the L2 norm of every weight that only that head uses (its rows
of the q, k and v projections and its columns of the output projection). Importance of MLP channel
``c``: the L2 norm of its ``fc1`` row (with bias) and its ``fc2`` column. Each layer keeps the
``ceil(keep * count)`` most important (at least one), and the pruned student is rebuilt with the
smaller per-layer widths and the surviving weights copied in, so parameters, FLOPs, ONNX size and
latency all really shrink. A short KD recovery (``distill.kd``) follows in the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from csi.presets import get_preset
from distill.models.blocks import Attention, Block, Mlp
from distill.models.student import Student


@dataclass(frozen=True)
class PruneConfig:
    """Fractions of heads and of MLP channels kept in every layer, in (0, 1]."""

    head_keep: float = 0.5
    mlp_keep: float = 0.5

    def __post_init__(self) -> None:
        for name in ("head_keep", "mlp_keep"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")


def _keep_count(total: int, keep: float) -> int:
    return max(1, math.ceil(keep * total - 1e-9))


def head_importance(attn: Attention) -> torch.Tensor:
    """L2 norm per head ``[heads]`` of the weights only that head uses."""
    d = attn.head_dim

    def rows(lin: nn.Linear) -> torch.Tensor:
        w = torch.cat([lin.weight, lin.bias[:, None]], dim=1)
        return w.reshape(attn.heads, d, -1).pow(2).sum(dim=(1, 2))

    out_cols = attn.out.weight.reshape(attn.out.weight.shape[0], attn.heads, d).pow(2).sum(
        dim=(0, 2))
    return (rows(attn.q) + rows(attn.k) + rows(attn.v) + out_cols).sqrt()


def channel_importance(mlp: Mlp) -> torch.Tensor:
    """L2 norm per hidden channel ``[hidden]`` of its ``fc1`` row (+ bias) and ``fc2`` column."""
    fc1 = torch.cat([mlp.fc1.weight, mlp.fc1.bias[:, None]], dim=1).pow(2).sum(dim=1)
    return (fc1 + mlp.fc2.weight.pow(2).sum(dim=0)).sqrt()


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    return scores.topk(count).indices.sort().values


def _copy_attention(src: Attention, dst: Attention, heads: torch.Tensor) -> None:
    d = src.head_dim
    idx = (heads[:, None] * d + torch.arange(d)[None]).reshape(-1)
    for name in ("q", "k", "v"):
        s, t = getattr(src, name), getattr(dst, name)
        t.weight.copy_(s.weight[idx])
        t.bias.copy_(s.bias[idx])
    dst.out.weight.copy_(src.out.weight[:, idx])
    dst.out.bias.copy_(src.out.bias)


def _copy_mlp(src: Mlp, dst: Mlp, channels: torch.Tensor) -> None:
    dst.fc1.weight.copy_(src.fc1.weight[channels])
    dst.fc1.bias.copy_(src.fc1.bias[channels])
    dst.fc2.weight.copy_(src.fc2.weight[:, channels])
    dst.fc2.bias.copy_(src.fc2.bias)


def prune_student(student: Student, cfg: PruneConfig) -> Student:
    """A new, smaller student keeping the most important heads and MLP channels of each layer."""
    blocks: list[Block] = list(student.encoder.blocks)  # type: ignore[arg-type]
    head_sets = [_top(head_importance(b.attn), _keep_count(b.attn.heads, cfg.head_keep))
                 for b in blocks]
    channel_sets = [_top(channel_importance(b.mlp), _keep_count(b.mlp.fc1.out_features,
                                                                cfg.mlp_keep)) for b in blocks]
    new_cfg = student.with_config(heads=tuple(len(h) for h in head_sets),
                                  mlp=tuple(len(c) for c in channel_sets))
    pruned = Student(new_cfg, get_preset(student.cfg.preset))
    kept = {k: v for k, v in student.state_dict().items() if ".attn." not in k and ".mlp." not in k}
    pruned.load_state_dict(kept, strict=False)
    with torch.no_grad():
        for src, dst, heads, channels in zip(blocks, pruned.encoder.blocks, head_sets,
                                             channel_sets, strict=True):
            _copy_attention(src.attn, dst.attn, heads)  # type: ignore[arg-type]
            _copy_mlp(src.mlp, dst.mlp, channels)  # type: ignore[arg-type]
    return pruned.train(student.training)
