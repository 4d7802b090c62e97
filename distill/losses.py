"""Distillation losses, each switchable through ``KdConfig``.

- ``nmse_loss``: task loss on the ground truth (mean per-sequence NMSE, linear) and, between student
  and teacher predictions, output distillation.
- ``FeatureSelector``: feature distillation with a learned cross-attention selector (Tiny-WiFo's
  CA-KS idea). For every student layer and token, a query from the student feature attends over the
  teacher's encoder layers at the same space-frequency token; the attention-weighted mix of the
  (layer-normalised) teacher features is the target that a learned projection of the student feature
  must match. The targets are convex mixes of fixed teacher features, so the selector cannot make
  them vanish.
- ``relation_loss``: attention-relation distillation (CSI-ALM, after MiniLMv2): for queries, keys
  and values, the token-token relation ``softmax(X X^T / sqrt(d))`` per relation head, student vs
  teacher, by KL divergence.
- ``beam_loss``: ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, best beam)``
  with ``alpha = 0.7`` by default; without a teacher it is the cross-entropy alone.
- ``KdConfig.robust``: robust distillation (``distill.robust``): the student sees its history
  re-noised at an SRS SNR drawn from ``[robust_snr_lo_db, robust_snr_hi_db]`` while the teacher's
  targets come from the noiseless history.

Teacher token grids are ``(time, space, frequency)``; the student has one token per
``(space, frequency)`` cell, so teacher features and q/k/v are averaged over their time patches
(``pool_time``) before they are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

_EPS = 1e-12


@dataclass(frozen=True)
class KdConfig:
    """Which distillation components are on, and their weights.

    ``robust``: robust distillation, the student's history re-noised per sequence at an SRS SNR
    drawn uniformly from ``[robust_snr_lo_db, robust_snr_hi_db]`` dB (``distill.robust``), the
    teacher's targets from the noiseless history.
    """

    task: bool = True
    task_weight: float = 1.0
    output: bool = True
    output_weight: float = 1.0
    feature: bool = True
    feature_weight: float = 0.05
    relation: bool = True
    relation_weight: float = 0.05
    beam: bool = True
    beam_weight: float = 0.02
    beam_alpha: float = 0.7
    temperature: float = 4.0
    adaptive: bool = True
    relation_heads: int = 4
    robust: bool = False
    robust_snr_lo_db: float = 0.0
    robust_snr_hi_db: float = 10.0

    def __post_init__(self) -> None:
        lo, hi = self.robust_snr_lo_db, self.robust_snr_hi_db
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"the robust SNR range must be finite dB with lo <= hi, got "
                             f"{lo}..{hi}")
        if not 0.0 <= self.beam_alpha <= 1.0:
            raise ValueError(f"beam_alpha must be in [0, 1], got {self.beam_alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not (self.task or self.output):
            raise ValueError("at least one of the task and output losses must be on")

    @property
    def robust_snr_db(self) -> tuple[float, float] | None:
        """The student's SNR range (lo, hi) in dB under robust distillation, else ``None``."""
        return (self.robust_snr_lo_db, self.robust_snr_hi_db) if self.robust else None

    @property
    def uses_teacher(self) -> bool:
        """Whether any component needs a teacher forward pass."""
        return self.output or self.feature or self.relation or self.beam

    @classmethod
    def scratch(cls) -> KdConfig:
        """No distillation at all: ground-truth task loss and beam cross-entropy only."""
        return cls(output=False, feature=False, relation=False, beam=False, adaptive=False)


def nmse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||pred - target||^2 / ||target||^2`` (linear), any ``[b, ...]``."""
    err = (pred - target).pow(2).flatten(1).sum(dim=1)
    ref = target.pow(2).flatten(1).sum(dim=1).clamp_min(_EPS)
    return (err / ref).mean()


def pool_time(x: torch.Tensor, n_cells: int) -> torch.Tensor:
    """Teacher tokens ``[b, t_p * n_cells, d]`` -> mean over time patches ``[b, n_cells, d]``."""
    b, n, d = x.shape
    if n % n_cells:
        raise ValueError(f"{n} teacher tokens do not tile {n_cells} space-frequency cells")
    return x.reshape(b, n // n_cells, n_cells, d).mean(dim=1)


class FeatureSelector(nn.Module):
    """Learned cross-attention over teacher layers, one query/projection per student layer."""

    def __init__(self, student_dim: int, teacher_dim: int, student_layers: int,
                 teacher_layers: int, key_dim: int = 32) -> None:
        super().__init__()
        self.key_dim = key_dim
        self.query = nn.ModuleList(nn.Linear(student_dim, key_dim) for _ in range(student_layers))
        self.project = nn.ModuleList(nn.Linear(student_dim, teacher_dim)
                                     for _ in range(student_layers))
        self.key = nn.Linear(teacher_dim, key_dim)
        self.layer_key = nn.Parameter(torch.zeros(teacher_layers, key_dim))
        nn.init.normal_(self.layer_key, std=0.02)

    def selection(self, student: list[torch.Tensor], teacher: list[torch.Tensor]
                  ) -> list[torch.Tensor]:
        """Attention weights over teacher layers: per student layer ``[b, n_cells, L_teacher]``."""
        stacked = torch.stack([F.layer_norm(t, t.shape[-1:]) for t in teacher], dim=2)
        keys = self.key(stacked) + self.layer_key                         # [b, n, L, k]
        return [torch.softmax(torch.einsum("bnk,bnlk->bnl", q(s), keys)
                              / math.sqrt(self.key_dim), dim=-1)
                for q, s in zip(self.query, student, strict=True)]

    def forward(self, student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
        """Student layers ``[b, n_cells, d_s]`` and time-pooled teacher layers ``[b, n_cells, d_t]``
        -> mean squared error between projected student features and the selected teacher mix."""
        normed = torch.stack([F.layer_norm(t, t.shape[-1:]) for t in teacher], dim=2)
        losses = []
        for weights, proj, s in zip(self.selection(student, teacher), self.project, student,
                                    strict=True):
            target = torch.einsum("bnl,bnld->bnd", weights, normed)
            losses.append(F.mse_loss(proj(s), target))
        return torch.stack(losses).mean()


def _relation(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[b, n, d]`` -> log relation ``log softmax(X X^T / sqrt(d/h))`` ``[b, h, n, n]``."""
    b, n, d = x.shape
    if d % heads:
        raise ValueError(f"width {d} is not divisible by {heads} relation heads")
    xh = x.reshape(b, n, heads, d // heads).transpose(1, 2)
    return torch.log_softmax(xh @ xh.transpose(-2, -1) / math.sqrt(d // heads), dim=-1)


def relation_loss(student_qkv: tuple[torch.Tensor, ...], teacher_qkv: tuple[torch.Tensor, ...],
                  heads: int) -> torch.Tensor:
    """Mean KL(teacher || student) of the QQ, KK and VV relations (rows are distributions).

    Both q/k/v triples are ``[b, n_cells, width]`` (teacher time-pooled); widths may differ.
    """
    losses = []
    for s, t in zip(student_qkv, teacher_qkv, strict=True):
        log_s, log_t = _relation(s, heads), _relation(t, heads)
        losses.append(F.kl_div(log_s.flatten(0, 2), log_t.flatten(0, 2), log_target=True,
                               reduction="batchmean"))
    return torch.stack(losses).mean()


def beam_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float) -> torch.Tensor:
    """``KL(softmax(teacher / T) || softmax(student / T))`` averaged over the batch."""
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),
                    F.log_softmax(teacher_logits / temperature, dim=-1),
                    log_target=True, reduction="batchmean")


def beam_loss(student_logits: torch.Tensor, labels: torch.Tensor,
              teacher_logits: torch.Tensor | None, temperature: float,
              alpha: float) -> torch.Tensor:
    """Beam head loss; ``labels`` ``[b]`` best-beam indices, logits ``[b, n_beams]``."""
    ce = F.cross_entropy(student_logits, labels)
    if teacher_logits is None:
        return ce
    kl = beam_kl(student_logits, teacher_logits, temperature) * temperature ** 2
    return alpha * kl + (1.0 - alpha) * ce
