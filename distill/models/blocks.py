"""Transformer building blocks shared by teacher and student.

The attention is written out (matmul + softmax) instead of ``nn.MultiheadAttention`` so that

- it can hand its queries, keys and values to the attention-relation distillation loss, and
- its ONNX graph is plain MatMul/Softmax that ONNX Runtime's INT8 quantizer understands.

Heads may differ per layer (structured pruning removes whole heads), so a layer is described by its
head count and head width instead of a single model width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


def sincos_encoding(positions: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sine-cosine encoding ``[positions, dim]`` (``dim`` even), as in the transformer."""
    if dim % 2:
        raise ValueError(f"sin-cos encoding width must be even, got {dim}")
    pos = torch.arange(positions, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    enc = torch.zeros(positions, dim, dtype=torch.float64)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq)
    return enc.float()


def split_encoding_widths(dim: int, axes: int) -> list[int]:
    """Split ``dim`` into ``axes`` even widths (the last takes the rest) for per-axis encodings."""
    if dim % 2 or dim < 2 * axes:
        raise ValueError(f"width {dim} must be even and >= {2 * axes} for {axes} encoded axes")
    part = 2 * (dim // (2 * axes))
    return [part] * (axes - 1) + [dim - part * (axes - 1)]


def grid_encoding(sizes: tuple[int, ...], dim: int) -> torch.Tensor:
    """Separate sin-cos encodings per grid axis, concatenated: ``[prod(sizes), dim]``.

    Token order is row-major over ``sizes`` (e.g. ``(time, space, frequency)``); each axis gets its
    own slice of the width, so the model can tell time, antenna and frequency positions apart.
    """
    widths = split_encoding_widths(dim, len(sizes))
    parts = []
    for axis, (size, width) in enumerate(zip(sizes, widths, strict=True)):
        enc = sincos_encoding(size, width)
        shape = [1] * len(sizes) + [width]
        shape[axis] = size
        parts.append(enc.reshape(shape).expand(*sizes, width))
    return torch.cat(parts, dim=-1).reshape(-1, dim)


@dataclass
class AttentionTrace:
    """What one encoder pass exposes to distillation.

    ``hidden``: per layer output ``[batch, tokens, width]``; ``qkv``: per layer
    (queries, keys, values), each ``[batch, tokens, heads * head_dim]``.
    """

    hidden: list[torch.Tensor] = field(default_factory=list)
    qkv: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)


class Attention(nn.Module):
    """Multi-head self-attention: ``heads`` heads of width ``head_dim`` on ``dim``-wide tokens."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"attention needs at least one head, got {heads}")
        self.heads = heads
        self.head_dim = head_dim
        inner = heads * head_dim
        self.q = nn.Linear(dim, inner)
        self.k = nn.Linear(dim, inner)
        self.v = nn.Linear(dim, inner)
        self.out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, trace: AttentionTrace | None = None) -> torch.Tensor:
        """``x`` ``[batch, tokens, dim]`` -> same shape; records q/k/v in ``trace``.

        The token count is taken as a plain int, so an exported graph reshapes with constants
        (a model's token count is fixed, only its batch is dynamic): ONNX Runtime then runs no
        Shape/Gather/Concat chain per layer, about a fifth of a small layer's nodes."""
        n = int(x.shape[1])
        q, k, v = self.q(x), self.k(x), self.v(x)
        if trace is not None:
            trace.qkv.append((q, k, v))

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(-1, n, self.heads, self.head_dim).transpose(1, 2)

        scores = heads(q) @ heads(k).transpose(-2, -1) / math.sqrt(self.head_dim)
        mixed = torch.softmax(scores, dim=-1) @ heads(v)
        return self.out(mixed.transpose(1, 2).reshape(-1, n, self.heads * self.head_dim))


class Mlp(nn.Module):
    """Two-layer GELU MLP ``dim -> hidden -> dim``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, trace: AttentionTrace | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), trace)
        x = x + self.mlp(self.norm2(x))
        if trace is not None:
            trace.hidden.append(x)
        return x


class Encoder(nn.Module):
    """A stack of blocks; layer ``i`` has ``heads[i]`` heads and ``mlp[i]`` hidden MLP channels."""

    def __init__(self, dim: int, heads: tuple[int, ...], head_dim: int,
                 mlp: tuple[int, ...]) -> None:
        super().__init__()
        if len(heads) != len(mlp):
            raise ValueError(f"{len(heads)} head counts for {len(mlp)} MLP widths")
        self.blocks = nn.ModuleList(Block(dim, h, head_dim, m) for h, m in zip(heads, mlp,
                                                                                 strict=True))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, trace: AttentionTrace | None = None) -> torch.Tensor:
        """``[batch, tokens, dim]`` -> normalised ``[batch, tokens, dim]``."""
        for block in self.blocks:
            x = block(x, trace)
        return self.norm(x)

