"""Scenario timelines: what the emulated DU's UEs experience, phase by phase.

A timeline is a JSON file::

    {"name": "speed-shift",
     "phases": [
       {"start_s": 0,  "label": "30 km/h UMa",
        "groups": [{"share": 1, "scenario": "UMa", "speed_kmh": 30}]},
       {"start_s": 60, "label": "150 km/h UMa", "end_s": 120,
        "groups": [{"share": 1, "scenario": "UMa", "speed_kmh": 150}]}]}

- ``start_s``: emulated time (s) the phase begins. The first phase starts at 0; starts strictly
  increase. ``end_s`` (optional) ends the timeline on the last phase; on another phase it must
  equal the next phase's start (anything else overlaps or leaves a gap).
- ``groups``: how the DU's UEs split within the phase. ``share`` is a positive weight (UEs are
  split in proportion, largest remainder first, in group order); ``scenario`` one of
  ``csi.presets.ALL_SCENARIOS``; ``speed_kmh`` a number or ``[lo, hi]`` (each UE draws its speed
  uniformly once per phase); ``carrier_hz`` defaults to the preset's carrier.

Loading validates everything and raises :class:`TimelineError` naming the phase and field.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi.presets import ALL_SCENARIOS

_PHASE_KEYS = frozenset({"start_s", "end_s", "label", "groups"})
_GROUP_KEYS = frozenset({"share", "scenario", "speed_kmh", "carrier_hz"})


class TimelineError(ValueError):
    """A timeline file or document that is malformed or inconsistent."""


@dataclass(frozen=True)
class UeGroup:
    """One group of UEs in a phase. ``carrier_hz`` None = the preset's carrier."""

    share: float
    scenario: str
    speed_kmh: tuple[float, float]
    carrier_hz: float | None = None


@dataclass(frozen=True)
class Phase:
    """Settings from ``start_s`` (emulated seconds) until the next phase."""

    start_s: float
    groups: tuple[UeGroup, ...]
    label: str = ""


@dataclass(frozen=True)
class UeSetting:
    """What one UE experiences in one phase: scenario, speed (km/h), carrier (Hz or None)."""

    scenario: str
    speed_kmh: float
    carrier_hz: float | None


@dataclass(frozen=True)
class Timeline:
    """Validated phases, sorted by start. ``end_s`` None = runs until stopped."""

    name: str
    phases: tuple[Phase, ...]
    end_s: float | None = None

    def phase_index(self, t_s: float) -> int:
        """Index of the phase in force at emulated time ``t_s`` (s, >= 0)."""
        if t_s < 0:
            raise ValueError(f"time must be >= 0 s, got {t_s}")
        starts = [p.start_s for p in self.phases]
        return int(np.searchsorted(starts, t_s, side="right")) - 1

    def phase_at(self, t_s: float) -> Phase:
        """The phase in force at emulated time ``t_s`` (s)."""
        return self.phases[self.phase_index(t_s)]

    def settings(self, phase_index: int, n_ues: int, seed: int = 0) -> list[UeSetting]:
        """Per-UE settings of phase ``phase_index`` for ``n_ues`` UEs (deterministic in
        ``seed``): UEs assigned to groups by share, speeds drawn uniformly in each range."""
        phase = self.phases[phase_index]
        counts = _split(n_ues, [g.share for g in phase.groups])
        rng = np.random.default_rng([seed, phase_index])
        out: list[UeSetting] = []
        for group, count in zip(phase.groups, counts, strict=True):
            speeds = rng.uniform(*group.speed_kmh, count)
            out.extend(UeSetting(group.scenario, float(v), group.carrier_hz) for v in speeds)
        return out


def _split(n: int, shares: Sequence[float]) -> list[int]:
    """``n`` items split in proportion to ``shares`` (largest remainder, ties in order)."""
    total = sum(shares)
    exact = [n * s / total for s in shares]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:n - sum(counts)]:
        counts[i] += 1
    return counts


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TimelineError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _unknown_keys(doc: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise TimelineError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _speed(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise TimelineError(f"{where} must be a number or [lo, hi], got {value!r}")
        lo, hi = (_number(v, where) for v in value)
    else:
        lo = hi = _number(value, where)
    if lo < 0 or hi < 0:
        raise TimelineError(f"{where} must be non-negative, got {value!r} km/h")
    if hi < lo:
        raise TimelineError(f"{where} range {value!r} km/h is reversed")
    return lo, hi


def _group(doc: Any, where: str) -> UeGroup:
    if not isinstance(doc, Mapping):
        raise TimelineError(f"{where} must be an object, got {type(doc).__name__}")
    _unknown_keys(doc, _GROUP_KEYS, where)
    for key in ("scenario", "speed_kmh"):
        if key not in doc:
            raise TimelineError(f"{where}: missing {key!r}")
    scenario = doc["scenario"]
    if scenario not in ALL_SCENARIOS:
        raise TimelineError(f"{where}: unknown scenario {scenario!r}; known: "
                            f"{list(ALL_SCENARIOS)}")
    share = _number(doc.get("share", 1.0), f"{where}.share")
    if share <= 0:
        raise TimelineError(f"{where}.share must be positive, got {share}")
    carrier = doc.get("carrier_hz")
    if carrier is not None:
        carrier = _number(carrier, f"{where}.carrier_hz")
        if carrier <= 0:
            raise TimelineError(f"{where}.carrier_hz must be positive, got {carrier}")
    return UeGroup(share, scenario, _speed(doc["speed_kmh"], f"{where}.speed_kmh"), carrier)


def _phase(doc: Any, where: str) -> tuple[Phase, float | None]:
    if not isinstance(doc, Mapping):
        raise TimelineError(f"{where} must be an object, got {type(doc).__name__}")
    _unknown_keys(doc, _PHASE_KEYS, where)
    if "start_s" not in doc:
        raise TimelineError(f"{where}: missing 'start_s'")
    start = _number(doc["start_s"], f"{where}.start_s")
    groups = doc.get("groups")
    if not isinstance(groups, list) or not groups:
        raise TimelineError(f"{where}.groups must be a non-empty list")
    end = None if doc.get("end_s") is None else _number(doc["end_s"], f"{where}.end_s")
    phase = Phase(start, tuple(_group(g, f"{where}.groups[{i}]") for i, g in enumerate(groups)),
                  str(doc.get("label", "")))
    return phase, end


def parse_timeline(doc: Any, name: str = "timeline") -> Timeline:
    """Validate a decoded JSON document (see the module docstring) into a :class:`Timeline`."""
    if not isinstance(doc, Mapping):
        raise TimelineError(f"{name}: the document must be an object with 'phases'")
    _unknown_keys(doc, frozenset({"name", "phases", "description"}), name)
    raw = doc.get("phases")
    if not isinstance(raw, list) or not raw:
        raise TimelineError(f"{name}: 'phases' must be a non-empty list")
    parsed = [_phase(p, f"phases[{i}]") for i, p in enumerate(raw)]
    for i, ((phase, end), (nxt, _)) in enumerate(itertools.pairwise(parsed)):
        if nxt.start_s <= phase.start_s:
            raise TimelineError(f"phases[{i + 1}] starts at {nxt.start_s} s, not after "
                                f"phases[{i}] ({phase.start_s} s): phases must be sorted and "
                                "must not overlap")
        if end is not None and end != nxt.start_s:
            problem = "overlaps the next phase" if end > nxt.start_s else "leaves a gap"
            raise TimelineError(f"phases[{i}] ends at {end} s but phases[{i + 1}] starts at "
                                f"{nxt.start_s} s: it {problem}")
    if parsed[0][0].start_s != 0:
        raise TimelineError(f"phases[0] must start at 0 s, got {parsed[0][0].start_s}")
    last, end = parsed[-1]
    if end is not None and end <= last.start_s:
        raise TimelineError(f"phases[{len(parsed) - 1}] ends at {end} s, not after its start "
                            f"{last.start_s} s")
    return Timeline(str(doc.get("name", name)), tuple(p for p, _ in parsed), end)


def load_timeline(path: str | Path) -> Timeline:
    """Read and validate a timeline JSON file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise TimelineError(f"cannot read timeline {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise TimelineError(f"{path}: not valid JSON: {exc}") from None
    try:
        return parse_timeline(doc, path.stem)
    except TimelineError as exc:
        raise TimelineError(f"{path}: {exc}") from None


def constant_timeline(scenario: str, speed_kmh: float | tuple[float, float],
                      carrier_hz: float | None = None) -> Timeline:
    """A one-phase timeline (all UEs in one group)."""
    speeds = speed_kmh if isinstance(speed_kmh, tuple) else (speed_kmh, speed_kmh)
    return parse_timeline({"name": "constant", "phases": [{"start_s": 0, "groups": [
        {"scenario": scenario, "speed_kmh": list(speeds), "carrier_hz": carrier_hz}]}]})
