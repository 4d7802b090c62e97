"""The teacher: a WiFo-style channel foundation model (space-time-frequency masked autoencoder).

The channel ``[time, antenna, rb]`` (real and imaginary as two channels) is cut into 3-D patches of
``patch_t x patch_a x patch_r`` values; each patch is one token, embedded linearly. Tokens carry
*separate* sin-cos encodings for their time, space (antenna) and frequency (RB) positions,
concatenated across the width. A transformer encoder sees only the visible tokens; a lighter decoder
puts learned mask tokens at the hidden positions and reconstructs their patches (MAE).

Pretraining masks tokens three ways (``distill.masks``): random tokens, the last time patches, or
whole frequency columns. Prediction is the time mask that hides exactly the ``horizon`` future
steps: ``forward(history)`` feeds the history tokens as the visible set, decodes the future tokens
with a prediction head (the correction to an in-graph forecast, the ``prior`` of
``distill.models.priors``: AR/Wiener, or at std the learned angle-delay predictor, larger than the
student's; its patches are embedded into the future tokens; the head is zero at initialisation,
so prediction training starts from the prior) and returns
the future plus beam scores computed from the first predicted step over the DFT codebook.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from csi.presets import Preset
from distill.models.ar_prior import rows_to_future, series_rows
from distill.models.beams import CodebookScores
from distill.models.blocks import AttentionTrace, Encoder, grid_encoding
from distill.models.priors import PriorSpec, make_prior


@dataclass(frozen=True)
class TeacherConfig:
    """Teacher geometry (from the preset) and size. Patches must tile the grid exactly."""

    preset: str
    n_ant: int
    n_rb: int
    history: int
    horizon: int
    patch_t: int
    patch_a: int
    patch_r: int
    dim: int
    depth: int
    heads: int
    dec_dim: int
    dec_depth: int
    dec_heads: int
    mlp_ratio: int = 4
    ar_order: int = 6
    prior: str = "ar"                 # distill.models.priors: "ar" or "angle_delay"
    prior_filters: int = 8
    prior_hidden: int = 32
    prior_neighbours: bool = False

    def __post_init__(self) -> None:
        problems = [f"{name} ({size}) is not a multiple of patch {patch}"
                    for name, size, patch in (("history", self.history, self.patch_t),
                                              ("horizon", self.horizon, self.patch_t),
                                              ("n_ant", self.n_ant, self.patch_a),
                                              ("n_rb", self.n_rb, self.patch_r))
                    if size % patch]
        for name, width, heads in (("dim", self.dim, self.heads),
                                   ("dec_dim", self.dec_dim, self.dec_heads)):
            if width % heads:
                problems.append(f"{name} {width} is not divisible by {heads} heads")
        if problems:
            raise ValueError("invalid teacher config: " + "; ".join(problems))

    @property
    def prior_spec(self) -> PriorSpec:
        """The forecaster this teacher refines (``distill.models.priors``)."""
        return PriorSpec(self.prior, self.ar_order, 1, self.prior_filters, self.prior_hidden,
                         self.prior_neighbours)

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (time, space, frequency) over history + horizon."""
        return ((self.history + self.horizon) // self.patch_t, self.n_ant // self.patch_a,
                self.n_rb // self.patch_r)

    @property
    def patch_size(self) -> int:
        """Values per token: ``patch_t * patch_a * patch_r * 2``."""
        return self.patch_t * self.patch_a * self.patch_r * 2

    @property
    def n_tokens(self) -> int:
        t, a, r = self.grid
        return t * a * r

    @property
    def n_history_tokens(self) -> int:
        """Tokens covering the history (the first ones: time is the slowest token axis)."""
        _, a, r = self.grid
        return self.history // self.patch_t * a * r


# Sizes per preset: tiny trains in seconds; std/demo a few M parameters for a CPU; full WiFo-Base
# scale (12 x 512 encoder) for a GPU.
_SIZES: dict[str, dict[str, object]] = {
    "tiny": dict(patch_t=2, patch_a=4, patch_r=4, dim=64, depth=2, heads=4,
                 dec_dim=48, dec_depth=1, dec_heads=4),
    "std": dict(patch_t=4, patch_a=8, patch_r=8, dim=192, depth=3, heads=6,
                dec_dim=128, dec_depth=1, dec_heads=4, ar_order=12, prior="angle_delay",
                prior_filters=24, prior_hidden=96, prior_neighbours=True),
    "full": dict(patch_t=2, patch_a=8, patch_r=8, dim=512, depth=12, heads=8,
                 dec_dim=256, dec_depth=4, dec_heads=8),
}
# The demo keeps the AR-prior teacher it was tuned with (its preparation and job timings).
_SIZES["demo"] = dict(patch_t=4, patch_a=8, patch_r=8, dim=192, depth=4, heads=6,
                      dec_dim=128, dec_depth=2, dec_heads=4)


def teacher_config(preset: Preset, **overrides: object) -> TeacherConfig:
    """The teacher size for ``preset`` (see ``_SIZES``), with optional field overrides."""
    if preset.name not in _SIZES:
        raise ValueError(f"no teacher size for preset {preset.name!r}; known: {sorted(_SIZES)}")
    size = {**_SIZES[preset.name], **overrides}
    return TeacherConfig(preset=preset.name, n_ant=preset.n_ant, n_rb=preset.n_rb,
                         history=preset.history, horizon=preset.horizon,
                         **size)  # type: ignore[arg-type]


def patchify(x: torch.Tensor, cfg: TeacherConfig) -> torch.Tensor:
    """``[batch, time, antenna, rb, 2]`` -> tokens ``[batch, t_p * a_p * r_p, patch_size]``."""
    b, t = x.shape[:2]
    x = x.reshape(b, t // cfg.patch_t, cfg.patch_t, cfg.n_ant // cfg.patch_a, cfg.patch_a,
                  cfg.n_rb // cfg.patch_r, cfg.patch_r, 2)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, -1, cfg.patch_size)


def unpatchify(tokens: torch.Tensor, cfg: TeacherConfig, steps: int) -> torch.Tensor:
    """Inverse of ``patchify`` for ``steps`` time steps: -> ``[batch, steps, antenna, rb, 2]``."""
    b = tokens.shape[0]
    _, ap, rp = cfg.grid
    x = tokens.reshape(b, steps // cfg.patch_t, ap, rp, cfg.patch_t, cfg.patch_a, cfg.patch_r, 2)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, steps, cfg.n_ant, cfg.n_rb, 2)


def _gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x`` ``[b, n, d]``, ``index`` ``[b, m]`` -> ``[b, m, d]``."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))


class Teacher(nn.Module):
    """WiFo-style MAE. ``forward(history)`` -> (future, beam_logits) per ``csi.model_io``."""

    pos: torch.Tensor
    dec_pos: torch.Tensor

    def __init__(self, cfg: TeacherConfig, preset: Preset) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.patch_size, cfg.dim)
        self.register_buffer("pos", grid_encoding(cfg.grid, cfg.dim), persistent=False)
        self.register_buffer("dec_pos", grid_encoding(cfg.grid, cfg.dec_dim), persistent=False)
        self.encoder = Encoder(cfg.dim, (cfg.heads,) * cfg.depth, cfg.dim // cfg.heads,
                               (cfg.mlp_ratio * cfg.dim,) * cfg.depth)
        self.bridge = nn.Linear(cfg.dim, cfg.dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(cfg.dec_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.decoder = Encoder(cfg.dec_dim, (cfg.dec_heads,) * cfg.dec_depth,
                               cfg.dec_dim // cfg.dec_heads,
                               (cfg.mlp_ratio * cfg.dec_dim,) * cfg.dec_depth)
        self.head = nn.Linear(cfg.dec_dim, cfg.patch_size)
        # Prediction head: the correction of each future patch to the AR/Wiener forecast. Zero at
        # initialisation, so prediction training starts from the classical baseline, not noise.
        # The forecast also enters the decoder: each future token is the mask token plus the
        # embedding of its forecast patch, so the decoder sees what it is correcting.
        self.prior = make_prior(cfg.prior_spec, preset)
        self.prior_embed = nn.Linear(cfg.patch_size, cfg.dec_dim)
        self.predict_head = nn.Linear(cfg.dec_dim, cfg.patch_size)
        nn.init.zeros_(self.predict_head.weight)
        nn.init.zeros_(self.predict_head.bias)
        self.beams = CodebookScores(preset)

    def config_dict(self) -> dict[str, object]:
        return asdict(self.cfg)

    # -- masked-autoencoder pass (pretraining) -------------------------------------------------
    def reconstruct(self, seq: torch.Tensor, visible: torch.Tensor,
                    masked: torch.Tensor) -> torch.Tensor:
        """MAE pass over a full sequence ``[b, history + horizon, antenna, rb, 2]``.

        ``visible`` ``[b, n_vis]`` and ``masked`` ``[b, n_mask]`` are token indices (a partition of
        the grid). Returns the reconstructed masked patches ``[b, n_mask, patch_size]``.
        """
        tokens = self.embed(patchify(seq, self.cfg)) + self.pos
        encoded = self.encoder(_gather_tokens(tokens, visible))
        b, n = seq.shape[0], self.cfg.n_tokens
        full = self.mask_token.expand(b, n, -1).clone()
        full = full.scatter(1, visible[..., None].expand(-1, -1, self.cfg.dec_dim),
                            self.bridge(encoded))
        decoded = self.decoder(full + self.dec_pos)
        return self.head(_gather_tokens(decoded, masked))

    # -- prediction: the time mask that hides the future -------------------------------------
    def encode_history(self, history: torch.Tensor,
                       trace: AttentionTrace | None = None) -> torch.Tensor:
        """History ``[b, history, antenna, rb, 2]`` -> encoded ``[b, n_hist_tokens, dim]``."""
        n_hist = self.cfg.n_history_tokens
        tokens = self.embed(patchify(history, self.cfg)) + self.pos[:n_hist]
        return self.encoder(tokens, trace)

    def decode_future(self, encoded: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Encoded history tokens and the history ``[b, history, antenna, rb, 2]`` -> future
        ``[b, horizon, antenna, rb, 2]`` = AR/Wiener forecast + decoded correction."""
        n_hist = encoded.shape[1]
        prior = rows_to_future(self.prior(series_rows(history)), self.cfg.n_ant, self.cfg.n_rb)
        future_tokens = self.mask_token + self.prior_embed(patchify(prior, self.cfg))
        full = torch.cat([self.bridge(encoded), future_tokens], dim=1) + self.dec_pos
        decoded = self.decoder(full)[:, n_hist:]
        delta = unpatchify(self.predict_head(decoded), self.cfg, self.cfg.horizon)
        return prior + delta

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[b, history, antenna, rb, 2]`` -> (future ``[b, horizon, antenna, rb, 2]``,
        beam_logits ``[b, n_beams]`` in dB of codebook gain on the first predicted step)."""
        future = self.decode_future(self.encode_history(history), history)
        return future, self.beams(future[:, 0])

    def forward_traced(self, history: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, AttentionTrace]:
        """Like ``forward`` but also returns the encoder's per-layer hidden states and q/k/v."""
        trace = AttentionTrace()
        future = self.decode_future(self.encode_history(history, trace), history)
        return future, self.beams(future[:, 0]), trace
