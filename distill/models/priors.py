"""The forecaster a model refines, by name: ``ar`` (``ArPrior``, classical, no parameters) or
``angle_delay`` (``AngleDelayPrior``, learned). Both map rows ``[b, 2 * history, antenna * rb]``
to forecast rows ``[b, 2 * horizon, antenna * rb]``, so teacher and student take either."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from csi.presets import Preset
from distill.models.ad_prior import AngleDelayPrior
from distill.models.ar_prior import ArPrior

PRIORS: tuple[str, ...] = ("ar", "angle_delay")


@dataclass(frozen=True)
class PriorSpec:
    """Which prior and its size: ``ar_order`` (both: the AR order; ``angle_delay`` uses it for
    its pooled AR filter), ``ar_rb_stride`` (``ar``: fit on every n-th RB), ``filters`` /
    ``hidden`` / ``neighbours`` / ``keep`` (``angle_delay``: filter bank, gate width, neighbour
    copies, how many of the strongest coefficients it forecasts; ``None``: all)."""

    kind: str = "ar"
    ar_order: int = 6
    ar_rb_stride: int = 1
    filters: int = 8
    hidden: int = 32
    neighbours: bool = False
    keep: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in PRIORS:
            raise ValueError(f"prior {self.kind!r} is not one of {list(PRIORS)}")


def make_prior(spec: PriorSpec, preset: Preset) -> nn.Module:
    """The prior ``spec`` describes, for ``preset``'s geometry and history/horizon."""
    if spec.kind == "angle_delay":
        return AngleDelayPrior(preset.rows, preset.cols, preset.pols, preset.n_rb,
                               preset.history, preset.horizon, filters=spec.filters,
                               hidden=spec.hidden, ar_order=spec.ar_order,
                               neighbours=spec.neighbours, keep=spec.keep)
    return ArPrior(preset.history, preset.horizon, spec.ar_order, spec.ar_rb_stride)
