"""Deployment budgets per preset, in one place: what the student must fit to be published.

``p99_us``: ONNX Runtime p99 latency, batch 1, one intra-op thread, on the machine running the gates
(µs). ``size_bytes``: the ONNX file. ``max_params``: the student's parameter count (the std student
must stay at or under 0.5 M). ``tiny`` only exercises the mechanism: its latency budget is loose
because a shared 2-core CI machine showed p99 spikes of 8 ms for a 0.3 ms model under load.
"""

from __future__ import annotations

from dataclasses import dataclass

from csi.presets import Preset


@dataclass(frozen=True)
class Budget:
    """Limits a published student must meet."""

    p99_us: float
    size_bytes: int
    max_params: int


_STD = Budget(p99_us=1000.0, size_bytes=1_000_000, max_params=500_000)
BUDGETS: dict[str, Budget] = {
    "tiny": Budget(p99_us=20_000.0, size_bytes=500_000, max_params=100_000),
    "demo": _STD,
    "std": _STD,
    "full": _STD,
}


def budget_for(preset: Preset) -> Budget:
    """The budget of ``preset`` (clear error for an unknown one)."""
    if preset.name not in BUDGETS:
        raise ValueError(f"no deployment budget for preset {preset.name!r}; "
                         f"known: {sorted(BUDGETS)}")
    return BUDGETS[preset.name]
