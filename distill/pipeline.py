"""The distillation pipeline: KD -> prune -> recover -> export -> INT8 -> gates -> artifact.

``run_distillation`` takes a trained teacher and the train/val/test sets and, in ``out_dir``:

1. scores the baselines (``csi.predictors``: outdated, AR/Wiener, Kalman, angle-delay AR) and the
   teacher on test;
2. trains ``student_scratch`` (same size, same data, no KD) unless told not to;
3. optionally sweeps the beam temperature (lowest validation beam KL wins);
4. distills ``student_kd``, prunes it (``distill.prune``) and recovers it with a short KD run
   (``student_pruned``);
5. exports every stage to ONNX (``onnx/``), checks fp32 parity of the pruned student, quantizes it
   to INT8 (``student_int8.onnx``; ``int8_mode`` dynamic, or static with a calibration slice of
   the training inputs);
6. measures params, FLOPs, ONNX size, test NMSE and ORT p50/p99 per stage (the stage table);
7. runs the gates on the INT8 student and, only if all pass, publishes ``artifact/``
   (``distill.artifact``) with the model card.

Run directory files: ``teacher.pt``, ``student_scratch.pt``, ``student_kd.pt``,
``student_pruned.pt``, ``student_int8.onnx`` (read back by ``distill.evaluate.learned_predictors``),
``onnx/*.onnx``, ``onnx/teacher.pt2`` (the teacher as a ``torch.export`` program, for the latency
benchmark's torch row), ``result.json`` and, when published, ``artifact/``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from csi.dataset import ChannelSet
from csi.predictors import AngleDelayAr, classical_predictors
from csi.presets import Preset
from distill.artifact import publish_artifact
from distill.budgets import budget_for
from distill.checkpoint import load_teacher, read_checkpoint, save_model
from distill.evaluate import OnnxPredictor, Score, TorchPredictor, score
from distill.export import export_onnx, export_torch_program, parity_error, quantize_int8
from distill.flops import forward_flops
from distill.gates import GateConfig, GateInputs, GateResult, evaluate_gates, failures
from distill.kd import (
    KdReport,
    StudentTrainConfig,
    student_schedule,
    sweep_temperature,
    train_student,
)
from distill.latency import measure_latency
from distill.losses import KdConfig
from distill.models.student import Student, student_config
from distill.prune import PruneConfig, prune_student
from distill.runtime import count_params
from distill.tensors import TaskData

PARITY_TOLERANCE = 1e-4
Phase = Callable[[str], None]


@dataclass(frozen=True)
class DistillOptions:
    """Everything ``run_distillation`` can be told; ``None`` means the preset default."""

    kd: KdConfig = field(default_factory=KdConfig)
    schedule: StudentTrainConfig | None = None
    recover_epochs: int | None = None
    prune: PruneConfig = field(default_factory=PruneConfig)
    temperatures: tuple[float, ...] = ()
    sweep_epochs: int | None = None
    low_data: float = 1.0
    noisy_labels: bool = False        # train on site data: SRS estimates as targets
    gates: GateConfig = field(default_factory=GateConfig)
    deployed_model: Path | None = None
    signing_key: Path | None = None
    train_scratch: bool = True
    latency_runs: int = 300
    calibration_size: int = 128
    int8_mode: str = "dynamic"
    progress: bool = True


@dataclass
class StageRow:
    """One row of the stage table (NMSE dB on the test set, latency µs, size bytes)."""

    stage: str
    params: int
    flops: int
    size_bytes: int
    nmse_db: float
    p50_us: float
    p99_us: float


@dataclass
class DistillResult:
    """What a distillation run produced and decided."""

    ok: bool
    reason: str
    preset: str
    run_dir: str
    artifact: str | None
    teacher_version: str
    data_hash: str
    stages: list[StageRow]
    gates: list[GateResult]
    scores: dict[str, dict[str, Any]]
    training: dict[str, dict[str, Any]]
    temperature: float
    temperature_sweep: dict[str, float]
    parity_max_abs: float
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gates"] = [g.as_dict() for g in self.gates]
        return out


@dataclass(frozen=True)
class Sets:
    """The data of one run: training, validation (sweep, reports) and test (table, gates)."""

    train: ChannelSet
    val: ChannelSet
    test: ChannelSet


def format_stage_table(rows: list[StageRow]) -> str:
    """The stage table as aligned text."""
    head = (f"{'stage':<16} {'params':>9} {'MFLOPs':>8} {'size KiB':>9} {'NMSE dB':>8} "
            f"{'p50 us':>8} {'p99 us':>8}")
    lines = [head, "-" * len(head)]
    lines += [f"{r.stage:<16} {r.params:>9d} {r.flops / 1e6:>8.2f} {r.size_bytes / 1024:>9.1f} "
              f"{r.nmse_db:>8.2f} {r.p50_us:>8.0f} {r.p99_us:>8.0f}" for r in rows]
    return "\n".join(lines)


def recovery_epochs(requested: int | None, schedule: StudentTrainConfig) -> int:
    """Epochs of the KD recovery after pruning: ``requested``, else a third of the student's."""
    return requested or max(1, schedule.epochs // 3)


def score_on(predictor: Any, test: TaskData, preset: Preset) -> Score:
    """``distill.evaluate.score`` of ``predictor`` on ``test`` (NMSE dB, speed bins, top-1)."""
    return score(predictor, test.history_complex(), test.future_complex(), test.speed_kmh, preset)


def new_student(preset: Preset) -> Student:
    """A freshly initialised student of the preset's default size (torch's global RNG)."""
    return Student(student_config(preset), preset)


class DistillRun:
    """State shared by the pipeline steps of one run."""

    def __init__(self, preset: Preset, teacher_path: Path, sets: Sets, out_dir: Path,
                 options: DistillOptions, on_phase: Phase) -> None:
        self.preset, self.options, self.out, self.on_phase = preset, options, out_dir, on_phase
        self.teacher, payload = load_teacher(teacher_path, preset)
        self.teacher_version: str = payload["version"]
        self.schedule = options.schedule or student_schedule(preset)
        full_train = TaskData.from_set(sets.train, preset)
        train = (full_train if options.low_data >= 1.0
                 else full_train.fraction(options.low_data, self.schedule.seed))
        self.train = train.with_noisy_labels(preset) if options.noisy_labels else train
        self.val = TaskData.from_set(sets.val, preset)
        self.test = TaskData.from_set(sets.test, preset)
        self.data_hash = sets.train.content_hash()
        self.test_hash = sets.test.content_hash()
        self.scores: dict[str, Score] = {}
        self.training: dict[str, KdReport] = {}
        self.rows: list[StageRow] = []
        out_dir.mkdir(parents=True, exist_ok=True)
        copy = out_dir / "teacher.pt"
        if not (copy.exists() and copy.samefile(teacher_path)):  # --out may be the teacher's dir
            shutil.copyfile(teacher_path, copy)

    def train_student(self, label: str, kd: KdConfig, student: Student | None = None,
                      epochs: int | None = None) -> Student:
        """Train ``student`` (a new one by default) as ``label`` and save ``OUT/label.pt``.

        A rerun resumes: when ``OUT/label.pt`` was written for the same teacher, data, KD
        configuration, schedule and student configuration, it is loaded instead of trained."""
        student = student or new_student(self.preset)
        schedule = self.schedule if epochs is None else replace(self.schedule, epochs=epochs)
        recipe = {"parent": self.teacher_version, "data_hash": self.data_hash, "kd": asdict(kd),
                  "schedule": asdict(schedule), "low_data": self.options.low_data,
                  "noisy_labels": self.options.noisy_labels}
        if self._resume(label, student, recipe):
            return student
        teacher = self.teacher if kd.uses_teacher else None
        self.training[label] = train_student(student, self.train, self.val, self.preset, kd,
                                             schedule, teacher, self.options.progress, label)
        save_model(self.out / f"{label}.pt", "student", student,
                   {**recipe, "training": self.training[label].as_dict()})
        return student

    def _resume(self, label: str, student: Student, recipe: dict[str, Any]) -> bool:
        """Load ``OUT/label.pt`` into ``student`` if it was trained to ``recipe``."""
        path = self.out / f"{label}.pt"
        if not path.is_file():
            return False
        payload = read_checkpoint(path, "student")
        meta = payload.get("meta", {})
        if (payload.get("config") != student.config_dict() or "training" not in meta
                or any(meta.get(key) != value for key, value in recipe.items())):
            return False
        student.load_state_dict(payload["state_dict"])
        self.training[label] = KdReport(**meta["training"])
        self.on_phase(f"resumed {label} from {path}")
        return True

    def stage(self, name: str, module: Any, onnx_path: Path, predictor: Any) -> None:
        """Score ``predictor`` and measure ``onnx_path``; append the stage row."""
        self.scores[name] = score_on(predictor, self.test, self.preset)
        latency = measure_latency(onnx_path, self.preset, runs=self.options.latency_runs)
        self.rows.append(StageRow(name, count_params(module), forward_flops(module, self.preset),
                                  onnx_path.stat().st_size, self.scores[name].nmse_db,
                                  latency.p50_us, latency.p99_us))


def run_distillation(preset: Preset, teacher_path: Path, sets: Sets, out_dir: Path,
                     options: DistillOptions | None = None,
                     on_phase: Phase = lambda phase: None) -> DistillResult:
    """Run the whole pipeline (module docstring) and write ``out_dir/result.json``."""
    options = options or DistillOptions()
    began = time.perf_counter()
    run = DistillRun(preset, teacher_path, sets, out_dir, options, on_phase)
    baselines = [*classical_predictors(), AngleDelayAr.for_preset(preset)]
    for baseline in baselines:
        run.scores[baseline.name] = score_on(baseline, run.test, preset)

    on_phase("distilling")
    students: dict[str, Student] = {}
    if options.train_scratch:
        students["student_scratch"] = run.train_student("student_scratch", KdConfig.scratch())
    kd, sweep = options.kd, dict[float, float]()
    if options.temperatures:
        sweep_cfg = replace(run.schedule, epochs=options.sweep_epochs or
                            max(1, run.schedule.epochs // 3))
        best, sweep = sweep_temperature(lambda: new_student(preset), run.teacher, run.train,
                                        run.val, preset, kd, sweep_cfg,
                                        list(options.temperatures), options.progress)
        kd = replace(kd, temperature=best)
    students["student_kd"] = run.train_student("student_kd", kd)

    on_phase("pruning")
    pruned = prune_student(students["student_kd"], options.prune)
    recover = recovery_epochs(options.recover_epochs, run.schedule)
    students["student_pruned"] = run.train_student("student_pruned", kd, pruned, recover)

    on_phase("exporting")
    onnx_dir = out_dir / "onnx"
    teacher_onnx = export_onnx(run.teacher, preset, onnx_dir / "teacher.onnx",
                               run.teacher_version)
    export_torch_program(run.teacher, preset, onnx_dir / "teacher.pt2")
    run.stage("teacher", run.teacher, teacher_onnx,
              TorchPredictor("teacher", run.teacher, preset))
    fp32: dict[str, Path] = {}
    for name, student in students.items():
        fp32[name] = export_onnx(student, preset, onnx_dir / f"{name}.onnx",
                                 f"{name}-{run.teacher_version}")
        run.stage(name, student, fp32[name], TorchPredictor(name, student, preset))
    parity = parity_error(students["student_pruned"], fp32["student_pruned"],
                          run.train.batch(np.arange(min(16, len(run.train)))).history)
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX fp32 parity {parity:.2e} exceeds {PARITY_TOLERANCE:.0e}")

    on_phase("quantizing")
    calib = (run.train.batch(np.arange(min(options.calibration_size, len(run.train)))).history
             .numpy() if options.int8_mode == "static" else None)
    int8_path = quantize_int8(fp32["student_pruned"], out_dir / "student_int8.onnx", calib,
                              mode=options.int8_mode)
    run.stage("student_int8", students["student_pruned"], int8_path,
              OnnxPredictor("student_int8", int8_path, preset))

    on_phase("gates")
    deployed_db = None
    if options.deployed_model is not None:
        run.scores["deployed"] = score_on(OnnxPredictor("deployed", options.deployed_model,
                                                        preset), run.test, preset)
        deployed_db = run.scores["deployed"].nmse_db
    int8_row = run.rows[-1]
    gates = evaluate_gates(GateInputs(
        student_db=int8_row.nmse_db, teacher_db=run.scores["teacher"].nmse_db,
        baselines_db={b.name: run.scores[b.name].nmse_db for b in baselines},
        p99_us=int8_row.p99_us, size_bytes=int8_row.size_bytes, params=int8_row.params,
        deployed_db=deployed_db),
        options.gates, budget_for(preset))
    failed = failures(gates)
    reason = ("all gates passed" if not failed else
              "gates failed: " + "; ".join(f"{g.name}: {g.reason}" for g in failed))
    result = DistillResult(
        ok=not failed, reason=reason, preset=preset.name, run_dir=str(out_dir), artifact=None,
        teacher_version=run.teacher_version, data_hash=run.data_hash, stages=run.rows,
        gates=gates, scores={k: v.as_dict() for k, v in run.scores.items()},
        training={k: v.as_dict() for k, v in run.training.items()},
        temperature=kd.temperature, temperature_sweep={f"{t:g}": v for t, v in sweep.items()},
        parity_max_abs=parity, wall_s=0.0)
    artifact_dir = out_dir / "artifact"
    shutil.rmtree(artifact_dir, ignore_errors=True)
    if result.ok:
        card = build_card(preset, result, run.test_hash, int8_path)
        publish_artifact(artifact_dir, int8_path, card, options.signing_key)
        result.artifact = str(artifact_dir)
        on_phase("published")
    result.wall_s = time.perf_counter() - began
    (out_dir / "result.json").write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return result


def build_card(preset: Preset, result: DistillResult, test_hash: str,
               model_path: Path) -> dict[str, Any]:
    """The model card of the published INT8 student (``card.json``)."""
    from distill.export import read_metadata

    int8 = next(r for r in result.stages if r.stage == "student_int8")
    return {
        "name": "kdran-student",
        "version": read_metadata(model_path).get("version", ""),
        "task": {"preset": preset.name, "history": preset.history, "horizon": preset.horizon,
                 "n_ant": preset.n_ant, "n_rb": preset.n_rb, "n_beams": preset.n_beams},
        "preset": preset.name,
        "data_hash": result.data_hash,
        "test_data_hash": test_hash,
        "parent_teacher_version": result.teacher_version,
        "params": int8.params,
        "flops": int8.flops,
        "size_bytes": int8.size_bytes,
        "latency_us": {"p50": int8.p50_us, "p99": int8.p99_us, "batch": 1, "threads": 1},
        "nmse_db": result.scores,
        "stages": [asdict(r) for r in result.stages],
        "gates": [g.as_dict() for g in result.gates],
        "gates_passed": all(g.passed for g in result.gates),
        "temperature": result.temperature,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
