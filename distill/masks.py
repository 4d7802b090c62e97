"""Token masks for the teacher's masked-autoencoder pretraining (WiFo's three masking kinds).

A mask is a pair of index tensors (visible ``[b, n_vis]``, masked ``[b, n_mask]``) over the
teacher's token grid ``(time, space, frequency)`` flattened row-major. Counts are the same for every
sample of a batch, so the encoder can run on a dense ``[b, n_vis, dim]`` tensor.

- ``random``: a ``ratio`` of all tokens, independently per sample;
- ``time``: the last ``k`` time patches (``k`` drawn per batch, 1 .. half the patches), which
  includes the prediction task itself (``k`` = horizon patches);
- ``frequency``: whole frequency columns (all times, all antennas), a ``ratio`` of them per sample.
"""

from __future__ import annotations

import torch

from distill.models.teacher import TeacherConfig

MASK_KINDS: tuple[str, ...] = ("random", "time", "frequency")


def _split(order: torch.Tensor, n_mask: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row token order ``[b, n]`` -> (visible sorted, masked sorted)."""
    masked, visible = order[:, :n_mask], order[:, n_mask:]
    return visible.sort(dim=1).values, masked.sort(dim=1).values


def random_mask(cfg: TeacherConfig, batch: int, ratio: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    n = cfg.n_tokens
    n_mask = min(n - 1, max(1, round(ratio * n)))
    return _split(torch.rand(batch, n, generator=gen).argsort(dim=1), n_mask)


def time_mask(cfg: TeacherConfig, batch: int, gen: torch.Generator,
              patches: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide the last ``patches`` time patches (drawn in 1 .. t_p // 2 when ``None``)."""
    t_p, a_p, r_p = cfg.grid
    if patches is None:
        patches = int(torch.randint(1, max(2, t_p // 2 + 1), (1,), generator=gen))
    if not 0 < patches < t_p:
        raise ValueError(f"time mask of {patches} patches needs 0 < patches < {t_p}")
    per_step = a_p * r_p
    order = torch.arange(cfg.n_tokens).roll(patches * per_step).expand(batch, -1)
    return _split(order, patches * per_step)


def frequency_mask(cfg: TeacherConfig, batch: int, ratio: float,
                   gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    t_p, a_p, r_p = cfg.grid
    n_cols = min(r_p - 1, max(1, round(ratio * r_p)))
    if r_p < 2:
        raise ValueError("frequency masking needs at least two frequency patches")
    cols = torch.rand(batch, r_p, generator=gen).argsort(dim=1)         # masked columns first
    col_of_token = torch.arange(cfg.n_tokens) % r_p                      # [n]
    rank = torch.empty_like(cols).scatter_(1, cols, torch.arange(r_p).expand(batch, -1))
    token_rank = rank[:, col_of_token]                                   # [b, n]
    order = (token_rank * cfg.n_tokens + torch.arange(cfg.n_tokens)).argsort(dim=1)
    return _split(order, n_cols * t_p * a_p)


def make_mask(kind: str, cfg: TeacherConfig, batch: int, ratio: float,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch on ``kind`` (one of ``MASK_KINDS``)."""
    if kind == "random":
        return random_mask(cfg, batch, ratio, gen)
    if kind == "time":
        return time_mask(cfg, batch, gen)
    if kind == "frequency":
        return frequency_mask(cfg, batch, ratio, gen)
    raise ValueError(f"unknown mask kind {kind!r}; known: {list(MASK_KINDS)}")
