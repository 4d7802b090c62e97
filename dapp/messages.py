"""Plain data exchanged by the dApp core, the gRPC layer and the client (numpy, no ORT/gRPC).

Channels are complex ``[antenna, rb]`` (one SRS estimate) or ``[time, antenna, rb]`` (a history,
oldest first); predictions are complex64 ``[horizon, antenna, rb]`` (csi/layout.py axes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Observation:
    """One UE's input: ``srs`` ``[antenna, rb]`` (delta) or ``history`` ``[time, antenna, rb]``
    (start/restart), complex, for SRS occasion ``slot``. ``group`` "" keeps the UE's group."""

    ue_id: str
    slot: int
    srs: np.ndarray | None = None
    history: np.ndarray | None = None
    group: str = ""


@dataclass(frozen=True)
class Answer:
    """A prediction for one UE. ``future`` complex64 ``[horizon, antenna, rb]`` (None while not
    ready); ``top_beams``/``top_scores`` best first; ``fallback_reason`` None for a model answer,
    else ``"no_model"``, ``"model_error"`` or ``"deadline"``."""

    ue_id: str
    slot: int
    ready: bool
    future: np.ndarray | None = None
    top_beams: np.ndarray | None = None
    top_scores: np.ndarray | None = None
    model_version: str = ""
    fallback_reason: str | None = None

    @property
    def fallback(self) -> bool:
        """True when the AR/Wiener fallback produced this answer."""
        return self.fallback_reason is not None

    @property
    def best_beam(self) -> int:
        """Index of the best beam (-1 while not ready)."""
        return int(self.top_beams[0]) if self.top_beams is not None and self.top_beams.size else -1


@dataclass(frozen=True)
class Versions:
    """Model roles after a control operation (``""`` = none)."""

    active: str
    shadow: str
    previous: str


@dataclass(frozen=True)
class DeployResult:
    """What was installed, and the roles afterwards."""

    version: str
    mode: str
    sha256: str
    size_bytes: int
    load_ms: float
    versions: Versions


@dataclass(frozen=True)
class CsiRecord:
    """A recent observation sequence of one UE: ``channel`` complex64 ``[time, antenna, rb]``
    covering the consecutive slots ``first_slot ..``."""

    ue_id: str
    group: str
    first_slot: int
    channel: np.ndarray
