"""The student: a few-token transformer sized for sub-millisecond inference on one CPU core.

The student refines a forecast made inside its graph by a *prior* (``distill.models.priors``):
the classical AR/Wiener predictor (``ArPrior``, ``prior="ar"``) or, at std, the learned
angle-delay predictor (``AngleDelayPrior``, ``prior="angle_delay"``), which does most of the work;
the network predicts the correction. Each antenna/RB series (its
noisy history followed by the prior's forecast, ``history + horizon`` complex values) is first mixed
down to ``time_features`` values by one shared linear map (a 1x1 convolution over the prior's
``[b, 2 * time, series]`` row layout, so the input is transposed once, for the prior and the mix
together); latency then comes from the token count,
so the student folds these features into the token: one token per space-frequency patch
(``patch_a`` antennas x ``patch_r`` RBs, ``time_features * patch_a * patch_r`` values). At std that
is 4 x 6 = 24 tokens, the same space-frequency grid as the teacher's, so attention relations of the
two can be compared token for token (the teacher's are pooled over its time patches).

Two heads:
- channel head: per token, a linear map to its ``horizon`` future patch values, added to the
  prior's forecast (the head starts at zero, so training starts from the prior);
- beam head: the first predicted step's codebook gains in dB (``CodebookScores``) plus a learned
  correction from the mean-pooled tokens.

Layer widths are per layer (``heads``, ``mlp``) so structured pruning can shrink each layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from csi.presets import Preset
from distill.models.ar_prior import rows_to_future, series_rows
from distill.models.beams import CodebookScores
from distill.models.blocks import AttentionTrace, Encoder, grid_encoding
from distill.models.priors import PriorSpec, make_prior


@dataclass(frozen=True)
class StudentConfig:
    """Student geometry (from the preset) and per-layer size."""

    preset: str
    n_ant: int
    n_rb: int
    history: int
    horizon: int
    n_beams: int
    patch_a: int
    patch_r: int
    dim: int
    head_dim: int
    heads: tuple[int, ...]
    mlp: tuple[int, ...]
    time_features: int = 8
    ar_order: int = 6
    ar_rb_stride: int = 1
    prior: str = "ar"                 # distill.models.priors: "ar" or "angle_delay"
    prior_filters: int = 8
    prior_hidden: int = 32
    prior_neighbours: bool = False
    prior_keep: int | None = None

    def __post_init__(self) -> None:
        problems = [f"{name} ({size}) is not a multiple of patch {patch}"
                    for name, size, patch in (("n_ant", self.n_ant, self.patch_a),
                                              ("n_rb", self.n_rb, self.patch_r)) if size % patch]
        if len(self.heads) != len(self.mlp) or not self.heads:
            problems.append(f"heads {self.heads} and mlp {self.mlp} must be non-empty, same length")
        if problems:
            raise ValueError("invalid student config: " + "; ".join(problems))

    @property
    def prior_spec(self) -> PriorSpec:
        """The forecaster this student refines (``distill.models.priors``)."""
        return PriorSpec(self.prior, self.ar_order, self.ar_rb_stride, self.prior_filters,
                         self.prior_hidden, self.prior_neighbours, self.prior_keep)

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (space, frequency)."""
        return self.n_ant // self.patch_a, self.n_rb // self.patch_r

    @property
    def n_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> StudentConfig:
        """Rebuild from ``asdict`` output (lists back to tuples)."""
        fields: dict[str, Any] = dict(data)
        for key in ("heads", "mlp"):
            fields[key] = tuple(fields[key])
        return cls(**fields)


_SIZES: dict[str, dict[str, object]] = {
    "tiny": dict(patch_a=4, patch_r=4, dim=32, head_dim=8, heads=(4, 4), mlp=(64, 64),
                 time_features=4),
    # std: the learned angle-delay prior (distill.models.ad_prior) does most of the work, one
    # encoder layer corrects it in the antenna/RB domain (an earlier study with the AR prior:
    # fewer layers were as accurate on test and better on every held-out set).
    "std": dict(patch_a=8, patch_r=8, dim=64, head_dim=16, heads=(4,), mlp=(128,),
                time_features=8, ar_order=12, prior="angle_delay", prior_filters=8,
                prior_hidden=32, prior_neighbours=True, prior_keep=256),
}
# The demo keeps the AR-prior student it was tuned with (its shift, job and rollout timings).
_SIZES["demo"] = dict(patch_a=8, patch_r=8, dim=64, head_dim=16, heads=(4,), mlp=(128,),
                      time_features=8, ar_rb_stride=8)
_SIZES["full"] = _SIZES["std"]


def student_config(preset: Preset, **overrides: object) -> StudentConfig:
    """The student size for ``preset`` (see ``_SIZES``), with optional field overrides."""
    if preset.name not in _SIZES:
        raise ValueError(f"no student size for preset {preset.name!r}; known: {sorted(_SIZES)}")
    size = {**_SIZES[preset.name], **overrides}
    return StudentConfig(preset=preset.name, n_ant=preset.n_ant, n_rb=preset.n_rb,
                         history=preset.history, horizon=preset.horizon,
                         n_beams=preset.n_beams, **size)  # type: ignore[arg-type]


class Student(nn.Module):
    """``forward(history)`` -> (future, beam_logits) per ``csi.model_io``."""

    pos: torch.Tensor

    def __init__(self, cfg: StudentConfig, preset: Preset) -> None:
        super().__init__()
        self.cfg = cfg
        self.prior = make_prior(cfg.prior_spec, preset)
        self.time_mix = nn.Conv1d((cfg.history + cfg.horizon) * 2, cfg.time_features, 1)
        self.embed = nn.Linear(cfg.time_features * cfg.patch_a * cfg.patch_r, cfg.dim)
        self.register_buffer("pos", grid_encoding(cfg.grid, cfg.dim), persistent=False)
        self.encoder = Encoder(cfg.dim, cfg.heads, cfg.head_dim, cfg.mlp)
        self.channel_head = nn.Linear(cfg.dim, cfg.horizon * cfg.patch_a * cfg.patch_r * 2)
        self.beam_head = nn.Linear(cfg.dim, cfg.n_beams)
        for head in (self.channel_head, self.beam_head):   # start from AR/Wiener + codebook
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.beams = CodebookScores(preset)

    def config_dict(self) -> dict[str, object]:
        return asdict(self.cfg)

    def with_config(self, **changes: object) -> StudentConfig:
        """This student's config with ``changes`` (used by pruning)."""
        return replace(self.cfg, **changes)  # type: ignore[arg-type]

    def _tokens(self, series: torch.Tensor) -> torch.Tensor:
        """History and AR forecast rows ``[b, 2 * (history + horizon), antenna * rb]`` -> tokens
        ``[b, a_p * r_p, time_features * patch_a * patch_r]``.

        A token's values are ordered (feature, antenna, RB): the transpose then moves whole
        ``patch_r`` runs. With the feature innermost (the first layout) ONNX Runtime's transpose
        went element by element and cost 27 µs of a 200 µs std student (measured), for the same
        embedding up to a column permutation."""
        c = self.cfg                       # batch is -1 everywhere: no Shape chains in ONNX
        feats = self.time_mix(series)                                       # [b, f, a * r]
        x = feats.reshape(-1, c.time_features, c.grid[0], c.patch_a, c.grid[1], c.patch_r)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(-1, c.n_tokens,
                                                   c.time_features * c.patch_a * c.patch_r)

    def _future(self, tokens: torch.Tensor, prior_rows: torch.Tensor) -> torch.Tensor:
        """Token outputs ``[b, n, dim]`` + AR forecast rows ``[b, 2 * horizon, antenna * rb]`` ->
        future ``[b, horizon, antenna, rb, 2]``."""
        c = self.cfg
        delta = self.channel_head(tokens).reshape(-1, c.grid[0], c.grid[1], c.horizon,
                                                  c.patch_a, c.patch_r, 2)
        delta = delta.permute(0, 3, 1, 4, 2, 5, 6).reshape(-1, c.horizon, c.n_ant, c.n_rb, 2)
        return rows_to_future(prior_rows, c.n_ant, c.n_rb) + delta

    def forward_traced(self, history: torch.Tensor, trace: AttentionTrace | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(future ``[b, horizon, antenna, rb, 2]``, beam_logits ``[b, n_beams]``); fills
        ``trace``."""
        rows = series_rows(history)                                        # [b, 2t, a * r]
        prior_rows = self.prior(rows)                                       # [b, 2H, a * r]
        tokens = self._tokens(torch.cat([rows, prior_rows], dim=1))
        encoded = self.encoder(self.embed(tokens) + self.pos, trace)
        future = self._future(encoded, prior_rows)
        logits = self.beams(future[:, 0]) + self.beam_head(encoded.mean(dim=1))
        return future, logits

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_traced(history)
