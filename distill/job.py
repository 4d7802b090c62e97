"""The re-distillation job: what the xApp launches (``kdran job run --spec spec.json``).

A spec is a JSON object::

    {
      "data_dir": "store/csi/cell-7",          # a ChannelSet directory (xApp export format)
      "teacher": "store/teachers/std.pt",      # base teacher checkpoint
      "preset": "std",
      "output_dir": "store/jobs/job-42",
      "gates": {"min_retention": 0.98, "must_beat": ["ar"]},   # optional, GateConfig fields
      "deployed_model": "store/models/active/model.onnx",       # optional
      "signing_key": "/run/secrets/kdran/signing.key",          # optional, else $KDRAN_SIGNING_KEY
      "adapt_epochs": 3, "student_epochs": 8,                   # optional overrides
      "test_fraction": 0.2, "val_fraction": 0.1, "seed": 0,     # optional
      "require_validated_teacher": true                         # optional, default true
    }

Unless ``require_validated_teacher`` is false, the job refuses a teacher without a passing, current
verdict from ``kdran teacher validate`` (``distill.validate``: the verdict file must exist, be for
the spec's preset and carry the checkpoint's sha256): ``phase=failed``, ``EXIT_ERROR`` and
``result.json`` with ``"refused": "teacher_not_validated"`` and the reason.

The job splits the site data (seeded) into train / val / test, adapts the teacher on the train part,
distills, prunes, quantizes and gates (``distill.pipeline``), and writes ``result.json`` in
``output_dir`` (``artifact/`` too when every gate passed). It prints ``phase=<name>`` lines
(``adapting``, ``distilling``, ``pruning``, ``exporting``, ``quantizing``, ``gates``,
``published``; ``failed`` on error) so a watcher can follow, and returns exit code 0 when a model
was published, ``EXIT_GATES_FAILED`` when gates refused it and ``EXIT_ERROR`` on a bad spec, an
unvalidated teacher (above) or any other failure (the reason is printed and in ``result.json``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from csi.dataset import ChannelSet
from csi.presets import Preset, get_preset
from distill.gates import GateConfig

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_GATES_FAILED = 3
PHASES: tuple[str, ...] = ("adapting", "distilling", "pruning", "exporting", "quantizing",
                           "gates", "published", "failed")
REQUIRED_FIELDS = ("data_dir", "teacher", "preset", "output_dir")
OPTIONAL_FIELDS = ("gates", "deployed_model", "signing_key", "adapt_epochs", "student_epochs",
             "test_fraction", "val_fraction", "seed", "require_validated_teacher")
SIGNING_KEY_ENV = "KDRAN_SIGNING_KEY"  # used when the spec names no signing_key


class SpecError(ValueError):
    """The job spec is missing, malformed or points at something that is not there."""


@dataclass(frozen=True)
class JobSpec:
    """A validated job spec (see the module docstring)."""

    data_dir: Path
    teacher: Path
    preset: Preset
    output_dir: Path
    gates: GateConfig = field(default_factory=GateConfig)
    deployed_model: Path | None = None
    signing_key: Path | None = None
    adapt_epochs: int | None = None
    student_epochs: int | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0
    require_validated_teacher: bool = True


def _positive_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"spec field {key!r} must be a positive integer, got {value!r}")
    return value


def _fraction(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if not isinstance(value, int | float) or not 0.0 < float(value) < 1.0:
        raise SpecError(f"spec field {key!r} must be a number in (0, 1), got {value!r}")
    return float(value)


def _flag(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"spec field {key!r} must be true or false, got {value!r}")
    return value


def _existing(data: dict[str, Any], key: str, base: Path) -> Path:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise SpecError(f"spec field {key!r} must be a non-empty path string, got {value!r}")
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.exists():
        raise SpecError(f"spec field {key!r}: {path} does not exist")
    return path


def _optional_existing(data: dict[str, Any], key: str, base: Path) -> Path | None:
    return _existing(data, key, base) if data.get(key) is not None else None


def _signing_key(data: dict[str, Any], base: Path) -> Path | None:
    """The spec's ``signing_key``, else ``$KDRAN_SIGNING_KEY``, else None (unsigned)."""
    if data.get("signing_key") is None and os.environ.get(SIGNING_KEY_ENV):
        data = {**data, "signing_key": os.environ[SIGNING_KEY_ENV]}
    return _optional_existing(data, "signing_key", base)


def parse_spec(data: Any, base: Path = Path(".")) -> JobSpec:
    """Validate a decoded spec; relative paths are relative to ``base``. Raises ``SpecError``."""
    if not isinstance(data, dict):
        raise SpecError(f"spec must be a JSON object, got {type(data).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in data]
    if missing:
        raise SpecError(f"spec is missing required field(s) {missing}; "
                        f"required: {list(REQUIRED_FIELDS)}")
    unknown = sorted(set(data) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise SpecError(f"spec has unknown field(s) {unknown}; "
                        f"known: {sorted(REQUIRED_FIELDS + OPTIONAL_FIELDS)}")
    try:
        preset = get_preset(str(data["preset"]))
        gates = GateConfig.from_dict(data.get("gates") or {})
    except (ValueError, TypeError) as exc:
        raise SpecError(str(exc)) from exc
    if not isinstance(data["output_dir"], str) or not data["output_dir"]:
        raise SpecError("spec field 'output_dir' must be a path string, "
                        f"got {data['output_dir']!r}")
    out = Path(data["output_dir"])
    spec = JobSpec(
        data_dir=_existing(data, "data_dir", base), teacher=_existing(data, "teacher", base),
        preset=preset, output_dir=out if out.is_absolute() else base / out, gates=gates,
        deployed_model=_optional_existing(data, "deployed_model", base),
        signing_key=_signing_key(data, base),
        adapt_epochs=_positive_int(data, "adapt_epochs"),
        student_epochs=_positive_int(data, "student_epochs"),
        test_fraction=_fraction(data, "test_fraction", 0.2),
        val_fraction=_fraction(data, "val_fraction", 0.1),
        seed=int(data.get("seed", 0)),
        require_validated_teacher=_flag(data, "require_validated_teacher", True))
    if spec.test_fraction + spec.val_fraction >= 0.9:
        raise SpecError("test_fraction + val_fraction must leave at least 10 % for training")
    return spec


def load_spec(path: Path) -> JobSpec:
    """Read and validate a spec file (``SpecError`` with the reason otherwise)."""
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SpecError(f"spec file {path} is not valid JSON: {exc}") from exc
    return parse_spec(data, path.parent)


def split_site_data(channels: ChannelSet, spec: JobSpec) -> tuple[ChannelSet, ...]:
    """Seeded split of the site data into (train, val, test); each part gets at least one row."""
    n = len(channels)
    if n < 3:
        raise SpecError(f"site data at {spec.data_dir} has {n} sequences; need at least 3")
    order = np.random.default_rng(spec.seed).permutation(n)
    n_test = max(1, round(spec.test_fraction * n))
    n_val = max(1, round(spec.val_fraction * n))
    parts = (order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test])
    return tuple(channels.subset(np.sort(p)) for p in parts)


def _phase(out: TextIO, name: str, detail: str = "") -> None:
    out.write(f"phase={name}" + (f" {detail}" if detail else "") + "\n")
    out.flush()


def _write_result(spec_out: Path, result: dict[str, Any]) -> None:
    spec_out.mkdir(parents=True, exist_ok=True)
    (spec_out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


def _refuse_unvalidated_teacher(spec: JobSpec, out: TextIO) -> bool:
    """True (after writing ``result.json`` and ``phase=failed``) when the spec's teacher lacks a
    passing, current validation verdict and the spec requires one."""
    from distill.validate import TeacherNotValidated, require_validated

    if not spec.require_validated_teacher:
        return False
    try:
        require_validated(spec.teacher, spec.preset)
    except TeacherNotValidated as exc:
        reason = f"teacher refused: {exc}"
        _write_result(spec.output_dir, {"ok": False, "reason": reason,
                                        "refused": "teacher_not_validated"})
        _phase(out, "failed", reason)
        return True
    return False


def run_job(spec: JobSpec, out: TextIO = sys.stdout, progress: bool = False) -> int:
    """Run the job of ``spec``; return the exit code (module docstring)."""
    from distill.kd import student_schedule
    from distill.pipeline import DistillOptions, Sets, run_distillation
    from distill.train import ADAPT_SCHEDULE, adapt_teacher

    if _refuse_unvalidated_teacher(spec, out):
        return EXIT_ERROR
    try:
        channels = ChannelSet.load(spec.data_dir)
        train, val, test = split_site_data(channels, spec)
        _phase(out, "adapting", f"data={channels.content_hash()[:12]} n={len(channels)}")
        adapted = spec.output_dir / "teacher_adapted.pt"
        schedule = (ADAPT_SCHEDULE if spec.adapt_epochs is None else
                    replace(ADAPT_SCHEDULE, predict_epochs=spec.adapt_epochs))
        report = adapt_teacher(spec.teacher, train, adapted, schedule, progress=progress)
        out.write(report.line() + "\n")
        options = DistillOptions(
            schedule=student_schedule(spec.preset, epochs=spec.student_epochs, seed=spec.seed),
            gates=spec.gates, deployed_model=spec.deployed_model,
            signing_key=spec.signing_key, train_scratch=False,
            progress=progress)
        result = run_distillation(spec.preset, adapted, Sets(train, val, test), spec.output_dir,
                                  options, on_phase=lambda name: _phase(out, name))
    except Exception as exc:  # the job must always leave a machine-readable reason
        reason = f"{type(exc).__name__}: {exc}"
        _write_result(spec.output_dir, {"ok": False, "reason": reason,
                                        "traceback": traceback.format_exc()})
        _phase(out, "failed", reason)
        return EXIT_ERROR
    payload = result.as_dict()
    payload["adapted_teacher"] = {"version": report.version, "val_nmse_db": report.val_nmse_db,
                                  "parent": str(spec.teacher)}
    _write_result(spec.output_dir, payload)
    if not result.ok:
        _phase(out, "failed", result.reason)
        return EXIT_GATES_FAILED
    return EXIT_OK
