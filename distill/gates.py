"""Publication gates: a student that fails any of them is not published.

- ``retention``: ``(outdated dB - student dB) / (outdated dB - teacher dB) >= min_retention``
  (default 0.98): the share of the teacher's gain over outdated CSI that the student keeps (NMSE
  in dB, test set).
- ``beats_<baseline>``: student NMSE (dB) strictly below each baseline in ``must_beat`` (default
  AR/Wiener).
- ``deployed``: no worse than the currently deployed model on the same data (only when its NMSE is
  given), within ``deployed_margin_db``.
- ``latency``: ORT p99 (µs) within the preset budget (``distill.budgets``) or an override.
- ``size``: ONNX file size within budget; ``params``: parameter count within budget.

Every gate yields a ``GateResult`` with the measured value, the threshold and a sentence saying why
it passed or failed; the pipeline prints them, puts them in ``result.json`` and, on success, in the
model card.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from distill.budgets import Budget


@dataclass(frozen=True)
class GateConfig:
    """Thresholds; ``None`` latency/size take the preset budget."""

    min_retention: float = 0.98
    must_beat: tuple[str, ...] = ("ar",)
    deployed_margin_db: float = 0.0
    max_p99_us: float | None = None
    max_size_bytes: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_retention <= 1.5:
            raise ValueError(f"min_retention must be in [0, 1.5], got {self.min_retention}")
        for name in ("max_p99_us", "max_size_bytes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateConfig:
        """From a JSON object (job spec); unknown keys are an error naming them."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown gate settings {sorted(unknown)}; known: {sorted(known)}")
        fields = dict(data)
        if "must_beat" in fields:
            fields["must_beat"] = tuple(fields["must_beat"])
        return cls(**fields)


@dataclass(frozen=True)
class GateInputs:
    """Measurements of the candidate (NMSE in dB on the test set, latency µs, size bytes)."""

    student_db: float
    teacher_db: float
    baselines_db: dict[str, float]
    p99_us: float
    size_bytes: int
    params: int
    deployed_db: float | None = None


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict."""

    name: str
    passed: bool
    value: float
    threshold: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def retention(outdated_db: float, student_db: float, teacher_db: float) -> float:
    """Share of the teacher's dB gain over outdated CSI kept by the student.

    Raises ``ValueError`` when the teacher does not beat outdated CSI (the ratio is meaningless).
    """
    gain = outdated_db - teacher_db
    if gain <= 0:
        raise ValueError(f"teacher ({teacher_db:.2f} dB) does not beat outdated CSI "
                         f"({outdated_db:.2f} dB); retention is undefined")
    return (outdated_db - student_db) / gain


def _retention_gate(m: GateInputs, cfg: GateConfig) -> GateResult:
    if "outdated" not in m.baselines_db:
        raise ValueError("the retention gate needs the outdated-CSI baseline")
    try:
        value = retention(m.baselines_db["outdated"], m.student_db, m.teacher_db)
    except ValueError as exc:
        return GateResult("retention", False, float("nan"), cfg.min_retention, str(exc))
    ok = value >= cfg.min_retention
    return GateResult("retention", ok, value, cfg.min_retention,
                      f"student keeps {value:.3f} of the teacher's gain over outdated CSI "
                      f"({'>=' if ok else '<'} {cfg.min_retention})")


def _beats_gate(m: GateInputs, baseline: str) -> GateResult:
    if baseline not in m.baselines_db:
        raise ValueError(f"gate asks to beat {baseline!r} but it was not measured; "
                         f"measured: {sorted(m.baselines_db)}")
    ref = m.baselines_db[baseline]
    ok = m.student_db < ref
    return GateResult(f"beats_{baseline}", ok, m.student_db, ref,
                      f"student {m.student_db:.2f} dB {'<' if ok else '>='} {baseline} "
                      f"{ref:.2f} dB")


def _deployed_gate(m: GateInputs, cfg: GateConfig) -> GateResult:
    assert m.deployed_db is not None
    limit = m.deployed_db + cfg.deployed_margin_db
    ok = m.student_db <= limit
    return GateResult("deployed", ok, m.student_db, limit,
                      f"student {m.student_db:.2f} dB vs deployed model {m.deployed_db:.2f} dB "
                      f"(allowed up to {limit:.2f} dB)")


def _limit_gate(name: str, value: float, limit: float, unit: str) -> GateResult:
    ok = value <= limit
    return GateResult(name, ok, value, limit,
                      f"{name} {value:.0f} {unit} {'<=' if ok else '>'} budget {limit:.0f} {unit}")


def evaluate_gates(m: GateInputs, cfg: GateConfig, budget: Budget) -> list[GateResult]:
    """All gate verdicts for the measurements ``m``."""
    results = [_retention_gate(m, cfg)]
    results += [_beats_gate(m, name) for name in cfg.must_beat]
    if m.deployed_db is not None:
        results.append(_deployed_gate(m, cfg))
    results.append(_limit_gate("latency_p99", m.p99_us,
                               cfg.max_p99_us if cfg.max_p99_us is not None else budget.p99_us,
                               "us"))
    results.append(_limit_gate("size", m.size_bytes, cfg.max_size_bytes
                               if cfg.max_size_bytes is not None else budget.size_bytes, "bytes"))
    results.append(_limit_gate("params", m.params, budget.max_params, "parameters"))
    return results


def failures(results: list[GateResult]) -> list[GateResult]:
    """The gates that failed."""
    return [r for r in results if not r.passed]
