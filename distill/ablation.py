"""KD ablation study: what each distillation component buys (``kdran distill ablate``).

Every variant trains a fresh student of the preset's default size on the same (optionally
reduced, ``low_data``) training set with the same schedule and seed; the student's initial weights
are the same for all variants (torch is seeded right before the student is built). Only the
``KdConfig`` differs:

- ``scratch``: the task loss (and the beam head's cross-entropy) alone, no teacher;
- ``full``: every component on (task, output, feature, relation, beam KD, adaptive schedule);
- ``full - <component>``: leave one out, for ``output``, ``feature`` (CA selector), ``relation``
  (QQ/KK/VV), ``beam-kd`` (the KL to the teacher's softened beams; the CE stays) and ``adaptive``
  (imitation/own-learning schedule: without it the teacher is queried on every batch);
- ``output only``: task loss + output distillation.

``scratch`` and ``full`` always run (the table's deltas refer to them); the others are chosen with
``components`` (``SELECTABLE``). Each variant is scored on the test split with
``distill.evaluate.score``: NMSE dB overall and per speed bin, best-beam top-1 accuracy. Its
``KdReport`` gives the teacher forward passes (samples) used and saved by the adaptive schedule
and the training wall time. The classical baselines (``bench_accuracy.classical_baselines``) and the
teacher are scored on the same test split in the same run as reference rows.

Files in ``out_dir``: ``teacher.pt`` (copy), ``<variant key>.pt`` per variant (its checkpoint
records the ``KdConfig`` it trained with) and ``ablation.json`` (``AblationResult.as_dict``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

# The first torch optimizer imports torch._dynamo (about 5 s on the development VM); importing it
# here keeps that one-off cost out of the first variant's training time, so train_s compares.
import torch._dynamo  # noqa: F401

from csi.predictors import Predictor
from csi.presets import Preset
from distill.bench_accuracy import classical_baselines
from distill.evaluate import Score, TorchPredictor
from distill.kd import StudentTrainConfig
from distill.losses import KdConfig
from distill.pipeline import DistillOptions, DistillRun, Sets, new_student, score_on
from distill.reports import write_json
from distill.runtime import setup_torch

Log = Callable[[str], None]

# selectable leave-one-out component (CLI spelling) -> the KdConfig switch it turns off
LEAVE_ONE_OUT: Final[dict[str, str]] = {"output": "output", "feature": "feature",
                                        "relation": "relation", "beam-kd": "beam",
                                        "adaptive": "adaptive"}
OUTPUT_ONLY: Final[str] = "output-only"
SELECTABLE: Final[tuple[str, ...]] = (*LEAVE_ONE_OUT, OUTPUT_ONLY)
REFERENCE_TEACHER: Final[str] = "teacher"


@dataclass(frozen=True)
class Variant:
    """One student to train: ``key`` names its checkpoint file, ``name`` its table row."""

    key: str
    name: str
    kd: KdConfig


def full_config(kd: KdConfig) -> KdConfig:
    """``kd`` (weights, temperature) with the task loss and every KD component switched on."""
    return replace(kd, task=True, **dict.fromkeys(LEAVE_ONE_OUT.values(), True))


def ablation_variants(components: Sequence[str], kd: KdConfig | None = None) -> list[Variant]:
    """``scratch``, ``full``, then ``full - X`` for each selected component (in ``SELECTABLE``
    order) and ``output only`` if selected. ``kd`` gives the weights and temperature."""
    check_components(components)
    full = full_config(kd or KdConfig())
    no_kd = dict.fromkeys(LEAVE_ONE_OUT.values(), False)
    plan = [Variant("scratch", "scratch", replace(full, **no_kd)), Variant("full", "full", full)]
    plan += [Variant(f"no_{name.replace('-', '_')}", f"full - {name}",
                     replace(full, **{switch: False}))
             for name, switch in LEAVE_ONE_OUT.items() if name in components]
    if OUTPUT_ONLY in components:
        plan.append(Variant("output_only", "output only", replace(full, **{**no_kd,
                                                                            "output": True})))
    return plan


def check_components(components: Sequence[str]) -> None:
    """``ValueError`` naming the unknown or repeated entries of ``components``."""
    unknown = [c for c in components if c not in SELECTABLE]
    repeated = sorted({c for c in components if list(components).count(c) > 1})
    if unknown or repeated:
        raise ValueError(f"components must be distinct names from {list(SELECTABLE)} (scratch and "
                         f"full always run); unknown: {unknown}, repeated: {repeated}")


@dataclass(frozen=True)
class AblationOptions:
    """What ``run_ablation`` can be told. ``kd``: weights and temperature of ``full`` (its on/off
    switches are ignored); ``schedule``: ``None`` = the preset's student schedule; ``low_data``:
    seeded fraction of the training split (seed of the schedule); ``noisy_labels``: the students
    learn from SRS estimates of the future (site data, ``TaskData.with_noisy_labels``)."""

    components: tuple[str, ...] = SELECTABLE
    kd: KdConfig = field(default_factory=KdConfig)
    schedule: StudentTrainConfig | None = None
    low_data: float = 1.0
    noisy_labels: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_components(self.components)
        if not 0.0 < self.low_data <= 1.0:
            raise ValueError(f"low_data (training fraction) must be in (0, 1], got {self.low_data}")
        if self.schedule is not None and self.schedule.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.schedule.epochs}")


@dataclass
class AblationRow:
    """One row: a trained variant (``kind="variant"``) or a reference predictor
    (``kind="reference"``). NMSE in dB on the test split; ``vs_full_db`` / ``vs_scratch_db`` are
    this row's NMSE minus that of ``full`` / ``scratch`` (negative = better). Teacher passes count
    samples; ``train_s`` is the training wall time in seconds (variants only)."""

    key: str
    name: str
    kind: str
    nmse_db: float
    nmse_db_by_speed: dict[str, float]
    beam_top1: float | None
    vs_full_db: float = 0.0
    vs_scratch_db: float = 0.0
    kd: dict[str, Any] | None = None
    val_nmse_db: float | None = None
    teacher_passes: int | None = None
    teacher_passes_saved: int | None = None
    train_s: float | None = None


@dataclass
class AblationResult:
    """The ablation table and what it was measured on."""

    preset: str
    teacher_version: str
    data_hash: str
    train_samples: int
    low_data: float
    schedule: dict[str, Any]
    rows: list[AblationRow]
    wall_s: float
    noisy_labels: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(key: str, name: str, kind: str, result: Score) -> AblationRow:
    return AblationRow(key, name, kind, result.nmse_db,
                       {k: v for k, v in result.nmse_db_by_speed.items() if k != "all"},
                       result.beam_top1)


def _train_variant(run: DistillRun, variant: Variant) -> AblationRow:
    """Train ``variant`` from the seeded initial weights, save it, score it on the test split."""
    setup_torch(run.schedule.seed)
    student = run.train_student(variant.key, variant.kd, new_student(run.preset))
    report = run.training[variant.key]
    row = _row(variant.key, variant.name, "variant",
               score_on(TorchPredictor(variant.key, student, run.preset), run.test, run.preset))
    row.kd, row.val_nmse_db, row.train_s = asdict(variant.kd), report.val_nmse_db, report.wall_s
    row.teacher_passes, row.teacher_passes_saved = (report.teacher_passes,
                                                    report.teacher_passes_saved)
    return row


def _switches(kd: KdConfig) -> str:
    on = [name for name, switch in (("task", "task"), *LEAVE_ONE_OUT.items())
          if getattr(kd, switch)]
    return "+".join(on) if on else "nothing"


def run_ablation(preset: Preset, teacher_path: Path, sets: Sets, out_dir: Path,
                 options: AblationOptions | None = None,
                 log: Log = lambda line: None) -> AblationResult:
    """Train and score every variant of ``options`` (module docstring), score the reference rows,
    write ``out_dir/ablation.json``. ``log`` receives one progress line per step."""
    options = options or AblationOptions()
    began = time.perf_counter()
    run = DistillRun(preset, teacher_path, sets, out_dir,
                     DistillOptions(kd=options.kd, schedule=options.schedule,
                                    low_data=options.low_data,
                                    noisy_labels=options.noisy_labels,
                                    progress=options.progress),
                     on_phase=log)
    plan = ablation_variants(options.components, options.kd)
    labels = "SRS-estimate" if options.noisy_labels else "clean"
    log(f"ablation on {preset.name}: {len(plan)} variants, {len(run.train)} training sequences "
        f"({options.low_data:g} of the split, {labels} labels), {run.schedule.epochs} epochs, seed "
        f"{run.schedule.seed}")
    rows = []
    for i, variant in enumerate(plan, 1):
        log(f"[{i}/{len(plan)}] {variant.name}: training ({_switches(variant.kd)})")
        rows.append(_train_variant(run, variant))
        log(f"[{i}/{len(plan)}] {variant.name}: test NMSE {rows[-1].nmse_db:.2f} dB, teacher "
            f"passes {rows[-1].teacher_passes} (saved {rows[-1].teacher_passes_saved}), "
            f"{rows[-1].train_s:.1f} s")
    log("scoring the reference rows (classical baselines, teacher) on the test split")
    references: list[Predictor] = [*classical_baselines(preset.test_snr_db, preset),
                                   TorchPredictor(REFERENCE_TEACHER, run.teacher, preset)]
    rows += [_row(p.name, p.name, "reference", score_on(p, run.test, preset))
             for p in references]
    by_key = {row.key: row.nmse_db for row in rows}
    full, scratch = by_key["full"], by_key["scratch"]
    for row in rows:
        row.vs_full_db, row.vs_scratch_db = row.nmse_db - full, row.nmse_db - scratch
    result = AblationResult(preset.name, run.teacher_version, run.data_hash, len(run.train),
                            options.low_data, asdict(run.schedule), rows,
                            time.perf_counter() - began, options.noisy_labels)
    write_json(result, out_dir / "ablation.json")
    return result


def _optional(value: float | None, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{spec}}"


def format_ablation_table(result: AblationResult) -> str:
    """The ablation table as aligned text: variants, then the reference rows."""
    bins = list(dict.fromkeys(b for r in result.rows for b in r.nmse_db_by_speed))
    name_w = max(len(r.name) for r in result.rows)
    head = (f"{'variant':<{name_w}} {'NMSE dB':>8} {'vs full':>8} {'vs scr.':>8} "
            + "".join(f"{b:>8} " for b in bins)
            + f"{'top-1':>6} {'T passes':>9} {'saved':>8} {'train s':>8}")
    lines = [head, "-" * len(head)]
    for i, r in enumerate(result.rows):
        if r.kind == "reference" and result.rows[i - 1].kind == "variant":
            lines.append(f"{'-- reference rows (same test split) ':-<{len(head)}}")
        speed = "".join(f"{r.nmse_db_by_speed.get(b, float('nan')):>8.2f} " for b in bins)
        lines.append(f"{r.name:<{name_w}} {r.nmse_db:>8.2f} {r.vs_full_db:>+8.2f} "
                     f"{r.vs_scratch_db:>+8.2f} {speed}{_optional(r.beam_top1, '.3f', 6)} "
                     f"{_optional(r.teacher_passes, 'd', 9)} "
                     f"{_optional(r.teacher_passes_saved, 'd', 8)} "
                     f"{_optional(r.train_s, '.1f', 8)}")
    lines.append(f"NMSE on the test split (dB; speed bins in km/h); vs full / vs scr.: minus the "
                 f"NMSE of full / scratch (negative = better; 'full - X' vs full = what X buys). "
                 f"Training: {result.train_samples} sequences"
                 f"{' (SRS-estimate labels)' if result.noisy_labels else ''}, "
                 f"epochs {result.schedule['epochs']}, "
                 f"seed {result.schedule['seed']}; T passes: teacher forward passes (samples), "
                 f"saved: skipped by the adaptive schedule.")
    return "\n".join(lines)
