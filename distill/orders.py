"""Compression orders of the student: in which order pruning, INT8 quantisation and KD recovery run.

- ``A``: KD -> prune -> KD recovery (fp32) -> static INT8 (post-training): what
  ``distill.pipeline`` does;
- ``B``: prune -> fake quantisation (calibrated) -> quantisation-aware KD recovery -> INT8;
- ``C``: fake quantisation (calibrated, weights snapped to the int8 grid) -> prune (head/channel
  importance from the snapped weights, the calibrated activation ranges kept) ->
  quantisation-aware KD recovery -> INT8.

All orders start from the same KD-distilled student (``student_kd.pt`` of a ``kdran distill`` run)
and share the teacher, the KD losses (``KdConfig`` of the student's checkpoint unless told
otherwise), the recovery schedule and data, the pruning fractions and the calibration slice (the
first ``calibration_size`` training sequences), so only the order differs. Quantisation-aware
recovery is ``distill.kd.train_student`` on the student carrying ``distill.qat`` wrappers. Every
order ends alike: wrappers removed, fp32 ONNX (``distill.export.export_onnx``), ONNX Runtime static
INT8 (``distill.export.quantize_int8``), then measured: params, FLOPs, INT8 ONNX size, test NMSE dB
of the INT8 ONNX overall and per speed bin, ORT p50/p99 (batch 1, one thread), the recovery's wall
time and the wall time of all the order's steps (prune, calibrate, recover, export, quantize).

Files in ``out_dir``: ``order_<X>/student.pt`` (recovered fp32 student), ``order_<X>/student.onnx``,
``order_<X>/student_int8.onnx`` and ``orders.json``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from csi.predictors import Predictor, classical_predictors
from csi.presets import Preset
from distill.checkpoint import load_student, load_teacher, save_model
from distill.evaluate import OnnxPredictor, Score, TorchPredictor, score
from distill.export import export_onnx, quantize_int8
from distill.flops import forward_flops
from distill.kd import (
    KdReport,
    StudentTrainConfig,
    student_schedule,
    teacher_view,
    train_student,
)
from distill.latency import measure_latency
from distill.losses import KdConfig
from distill.models.student import Student
from distill.models.teacher import Teacher
from distill.pipeline import Sets, recovery_epochs
from distill.prune import PruneConfig, prune_student
from distill.qat import (
    QatConfig,
    activation_ranges,
    attach_fake_quant,
    calibrate,
    remove_fake_quant,
    set_activation_ranges,
    snap_weights,
)
from distill.reports import write_json
from distill.runtime import count_params
from distill.tensors import TaskData

ORDERS: Final[dict[str, str]] = {
    "A": "KD -> prune -> recover -> INT8 (PTQ)",
    "B": "prune -> quantize -> QAT recover -> INT8",
    "C": "quantize -> prune -> QAT recover -> INT8",
}
# The order distill.pipeline runs; switch it once the std comparison says another order wins.
default_order: Final[str] = "A"
REFERENCE_BASELINES: Final[tuple[str, ...]] = ("outdated", "ar")


@dataclass(frozen=True)
class OrdersOptions:
    """What ``run_orders`` can be told; ``None`` means: as the pipeline / the checkpoint."""

    orders: tuple[str, ...] = tuple(ORDERS)
    kd: KdConfig | None = None
    prune: PruneConfig = field(default_factory=PruneConfig)
    qat: QatConfig = field(default_factory=QatConfig)
    schedule: StudentTrainConfig | None = None
    recover_epochs: int | None = None
    train_fraction: float = 1.0
    calibration_size: int = 128
    latency_runs: int = 300
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [o for o in self.orders if o not in ORDERS]
        if unknown or not self.orders or len(set(self.orders)) != len(self.orders):
            raise ValueError(f"orders must be distinct names from {sorted(ORDERS)}, "
                             f"got {list(self.orders)}")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if self.calibration_size < 1 or self.latency_runs < 1:
            raise ValueError("calibration_size and latency_runs must be >= 1")
        if self.recover_epochs is not None and self.recover_epochs < 1:
            raise ValueError(f"recover_epochs must be >= 1, got {self.recover_epochs}")


@dataclass
class OrderRow:
    """One order's INT8 student (NMSE dB on the test set, size bytes, latency µs, times s)."""

    order: str
    steps: str
    params: int
    flops: int
    size_bytes: int
    nmse_db: float
    nmse_db_by_speed: dict[str, float]
    fp32_nmse_db: float
    p50_us: float
    p99_us: float
    train_s: float
    steps_s: float


@dataclass
class OrdersResult:
    """The comparison: one row per order plus the reference scores (test NMSE dB)."""

    preset: str
    default_order: str
    teacher_version: str
    student_kd_version: str
    data_hash: str
    kd: dict[str, Any]
    recover_epochs: int
    train_samples: int
    calibration_size: int
    reference: dict[str, float]
    rows: list[OrderRow]
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Study:
    """What every order shares."""

    preset: Preset
    teacher: Teacher
    train: TaskData
    val: TaskData
    test: TaskData
    kd: KdConfig
    schedule: StudentTrainConfig
    calibration: torch.Tensor
    options: OrdersOptions

    def recover(self, student: Student, label: str) -> KdReport:
        """KD recovery of ``student`` in place (quantisation-aware if it carries wrappers)."""
        return train_student(student, self.train, self.val, self.preset, self.kd, self.schedule,
                             self.teacher, self.options.progress, label)

    def score(self, predictor: Predictor) -> Score:
        """``predictor`` scored on the test split."""
        return score(predictor, self.test.history_complex(), self.test.future_complex(),
                     self.test.speed_kmh, self.preset)


def _warm_up(study: _Study, student: Student) -> None:
    """One teacher pass and one student forward/backward before any order is timed, so the first
    order does not pay torch's one-off start-up costs."""
    batch = study.train.batch(np.arange(min(study.schedule.batch_size, len(study.train))))
    teacher_view(study.teacher, batch.history, student.cfg.n_tokens)
    future, logits = copy.deepcopy(student).train()(batch.history)
    (future.square().mean() + logits.square().mean()).backward()


def _order_a(study: _Study, student_kd: Student) -> tuple[Student, KdReport]:
    pruned = prune_student(student_kd, study.options.prune)
    return pruned, study.recover(pruned, "order A: recover")


def _order_b(study: _Study, student_kd: Student) -> tuple[Student, KdReport]:
    pruned = prune_student(student_kd, study.options.prune)
    attach_fake_quant(pruned, study.options.qat)
    calibrate(pruned, study.calibration)
    report = study.recover(pruned, "order B: QAT recover")
    remove_fake_quant(pruned)
    return pruned, report


def _order_c(study: _Study, student_kd: Student) -> tuple[Student, KdReport]:
    quantized = copy.deepcopy(student_kd)
    attach_fake_quant(quantized, study.options.qat)
    calibrate(quantized, study.calibration)
    snap_weights(quantized)
    ranges = activation_ranges(quantized)
    remove_fake_quant(quantized)
    pruned = prune_student(quantized, study.options.prune)
    attach_fake_quant(pruned, study.options.qat)
    set_activation_ranges(pruned, ranges)
    report = study.recover(pruned, "order C: QAT recover")
    remove_fake_quant(pruned)
    return pruned, report


ORDER_STEPS: Final[dict[str, Callable[[_Study, Student], tuple[Student, KdReport]]]] = {
    "A": _order_a, "B": _order_b, "C": _order_c}


def _run_order(study: _Study, name: str, student_kd: Student, out_dir: Path,
               version: str) -> OrderRow:
    """Run order ``name`` from ``student_kd`` (left untouched), export, quantize and measure."""
    began = time.perf_counter()
    student, report = ORDER_STEPS[name](study, student_kd)
    fp32 = export_onnx(student, study.preset, out_dir / "student.onnx", f"order{name}-{version}")
    int8 = quantize_int8(fp32, out_dir / "student_int8.onnx", study.calibration.numpy(),
                         mode="static")             # what distill.qat trains for
    steps_s = time.perf_counter() - began
    save_model(out_dir / "student.pt", "student", student,
               {"parent": version, "order": name, "kd": asdict(study.kd),
                "training": report.as_dict()})
    int8_score = study.score(OnnxPredictor(f"order_{name}", int8, study.preset))
    latency = measure_latency(int8, study.preset, runs=study.options.latency_runs)
    return OrderRow(name, ORDERS[name], count_params(student),
                    forward_flops(student, study.preset), int8.stat().st_size,
                    int8_score.nmse_db, int8_score.nmse_db_by_speed,
                    study.score(TorchPredictor(name, student, study.preset)).nmse_db,
                    latency.p50_us, latency.p99_us, report.wall_s, steps_s)


def _load(preset: Preset, teacher_path: Path, student_kd_path: Path
          ) -> tuple[Teacher, dict[str, Any], Student, dict[str, Any]]:
    """Teacher and KD student, checked to belong to ``preset`` and to each other."""
    teacher, t_payload = load_teacher(teacher_path, preset)
    student, s_payload = load_student(student_kd_path, preset)
    parent = s_payload.get("meta", {}).get("parent")
    if parent is not None and parent != t_payload["version"]:
        raise ValueError(f"{student_kd_path} was distilled from {parent}, not from "
                         f"{teacher_path} ({t_payload['version']}): pass its own teacher")
    return teacher, t_payload, student, s_payload


def run_orders(preset: Preset, teacher_path: Path, student_kd_path: Path, sets: Sets,
               out_dir: Path, options: OrdersOptions | None = None,
               on_order: Callable[[str], None] = lambda name: None) -> OrdersResult:
    """Run every order of ``options`` (module docstring); write ``out_dir/orders.json``."""
    options = options or OrdersOptions()
    began = time.perf_counter()
    teacher, t_payload, student_kd, s_payload = _load(preset, teacher_path, student_kd_path)
    kd = options.kd or KdConfig(**s_payload.get("meta", {}).get("kd", {}))
    base = options.schedule or student_schedule(preset)
    schedule = replace(base, epochs=recovery_epochs(options.recover_epochs, base))
    full_train = TaskData.from_set(sets.train, preset)
    calib_rows = np.arange(min(options.calibration_size, len(full_train)))
    study = _Study(preset, teacher,
                   full_train if options.train_fraction >= 1.0
                   else full_train.fraction(options.train_fraction, schedule.seed),
                   TaskData.from_set(sets.val, preset), TaskData.from_set(sets.test, preset),
                   kd, schedule, full_train.batch(calib_rows).history, options)
    reference = {p.name: study.score(p).nmse_db for p in classical_predictors()
                 if p.name in REFERENCE_BASELINES}
    reference["student_kd"] = study.score(TorchPredictor("student_kd", student_kd,
                                                         preset)).nmse_db
    _warm_up(study, student_kd)
    rows = []
    for name in options.orders:
        on_order(name)
        rows.append(_run_order(study, name, student_kd, out_dir / f"order_{name}",
                               s_payload["version"]))
    result = OrdersResult(preset.name, default_order, t_payload["version"], s_payload["version"],
                          sets.train.content_hash(), asdict(kd), schedule.epochs,
                          len(study.train), len(calib_rows), reference, rows,
                          time.perf_counter() - began)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(result, out_dir / "orders.json")
    return result


def format_orders_table(result: OrdersResult) -> str:
    """The orders table as aligned text: one row per order, speed-bin NMSE columns, references."""
    bins = sorted({b for r in result.rows for b in r.nmse_db_by_speed if b != "all"},
                  key=lambda b: float(b.split("-")[0]))
    head = (f"{'order':<5} {'steps':<42} {'params':>8} {'MFLOPs':>7} {'KiB':>6} "
            f"{'NMSE dB':>8} {'fp32 dB':>8} " + " ".join(f"{b:>8}" for b in bins)
            + f" {'p50 us':>7} {'p99 us':>7} {'train s':>8} {'steps s':>8}")
    lines = [head, "-" * len(head)]
    for r in result.rows:
        speed = " ".join(f"{r.nmse_db_by_speed.get(b, float('nan')):>8.2f}" for b in bins)
        mark = "*" if r.order == result.default_order else " "
        lines.append(f"{r.order + mark:<5} {r.steps:<42} {r.params:>8d} {r.flops / 1e6:>7.2f} "
                     f"{r.size_bytes / 1024:>6.1f} {r.nmse_db:>8.2f} {r.fp32_nmse_db:>8.2f} "
                     f"{speed} {r.p50_us:>7.0f} {r.p99_us:>7.0f} {r.train_s:>8.1f} "
                     f"{r.steps_s:>8.1f}")
    lines.append("(* = default order; NMSE on the test split, INT8 ONNX unless 'fp32'; speed "
                 "bins in km/h) reference: " + ", ".join(f"{k} {v:.2f} dB"
                                                        for k, v in result.reference.items()))
    return "\n".join(lines)
