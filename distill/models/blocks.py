"""Transformer building blocks shared by teacher and student.

The attention is written out (matmul + softmax) instead of ``nn.MultiheadAttention`` so that
it can hand its queries, keys and values to the attention-relation distillation loss; exported,
the q/k/v projections and the attention between them are ONE node, ONNX Runtime's
``com.microsoft.Attention`` (packed ``[dim, 3 * inner]`` weight; dynamic INT8 turns it into
``QAttention``), and the output projection is a plain MatMul. Token counts are read as
plain ints (a model's token count is fixed, only its batch is dynamic), so exported graphs
reshape with constants and run no Shape/Gather/Concat chains.

Heads may differ per layer (structured pruning removes whole heads), so a layer is described by its
head count and head width instead of a single model width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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
        """``x`` ``[batch, tokens, dim]`` -> same shape; records q/k/v in ``trace``. Exported
        to ONNX, projections and attention are one node (``_ExportedAttention``)."""
        if torch.onnx.is_in_onnx_export():
            weight = torch.cat([self.q.weight, self.k.weight, self.v.weight]).t()  # [dim, 3 inner]
            bias = torch.cat([self.q.bias, self.k.bias, self.v.bias])
            return self.out(_ExportedAttention.apply(x, weight, bias, self.heads))
        q, k, v = self.q(x), self.k(x), self.v(x)
        if trace is not None:
            trace.qkv.append((q, k, v))
        return self.out(scaled_dot_product(q, k, v, self.heads))


def scaled_dot_product(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       heads: int) -> torch.Tensor:
    """Multi-head scaled dot-product attention on packed heads: ``q``, ``k``, ``v``
    ``[batch, tokens, heads * head_dim]`` -> ``[batch, tokens, heads * head_dim]``."""
    n, inner = int(q.shape[1]), int(q.shape[2])
    head_dim = inner // heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, n, heads, head_dim).transpose(1, 2)

    scores = split(q) @ split(k).transpose(-2, -1) / math.sqrt(head_dim)
    mixed = torch.softmax(scores, dim=-1) @ split(v)
    return mixed.transpose(1, 2).reshape(-1, n, inner)


class _ExportedAttention(torch.autograd.Function):
    """The q/k/v projections and ``scaled_dot_product`` as ONE ONNX node, ONNX Runtime's
    ``com.microsoft.Attention``: input ``[b, tokens, dim]``, packed weight ``[dim, 3 * inner]``
    (q, k, v columns) and bias ``[3 * inner]``, scale ``1/sqrt(head_dim)``. Instead of three
    projection MatMuls feeding a ``MultiHeadAttention`` (the previous export) it saved 15 µs of a
    255 µs std INT8 student on one core (AVX-512 Xeon, measured): one quantization of the input
    and one packed product instead of three, and no q/k/v layout changes inside the kernel.
    Dynamic INT8 quantizes it as ``QAttention``; static (QDQ) has no Attention quantizer, so
    ``distill.export`` splits it back into q/k/v MatMuls + ``MultiHeadAttention`` first."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                heads: int) -> torch.Tensor:
        q, k, v = (x @ weight + bias).chunk(3, dim=-1)
        return scaled_dot_product(q, k, v, heads)

    @staticmethod
    def symbolic(g: Any, x: Any, weight: Any, bias: Any, heads: int) -> Any:
        out = g.op("com.microsoft::Attention", x, weight, bias, num_heads_i=heads)
        x_sizes, w_sizes = x.type().varyingSizes(), weight.type().varyingSizes()
        if x_sizes and w_sizes and w_sizes[1]:   # output [b, tokens, inner], for the exporter's
            out.setType(x.type().with_sizes([*x_sizes[:2], w_sizes[1] // 3]))  # shape inference
        return out


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

