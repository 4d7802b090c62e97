"""Training a student, with or without a teacher: the knowledge-distillation loop.

Per batch the loss is the sum of the components switched on in ``KdConfig`` (``distill.losses``).
The teacher runs under ``torch.no_grad``; its encoder features and q/k/v are pooled over time
patches to the student's space-frequency token grid.

``ImitationSchedule`` is the adaptive imitation / own-learning schedule (the Tiny-WiFo AL-PL idea):
it tracks the recent NMSE of the student (every batch, from the task loss) and of the teacher (on
the batches where the teacher was queried). While the teacher is clearly ahead the student imitates
(teacher queried every batch); as the gap closes, batches are increasingly spent on own learning
from the ground truth alone, and the teacher forward pass is skipped. Query probability:
``clip(gap_db / gap_scale_db, min_prob, 1)``; always 1 during the warm-up steps. Skipped passes are
counted and reported.

With ``KdConfig.robust`` on the loop does robust distillation (``distill.robust``): per batch the
student's history is re-noised at an SNR drawn from ``KdConfig.robust_snr_db`` (dB, per sequence,
seeded from the schedule's seed) while the teacher is queried on the noiseless history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from csi.presets import Preset
from distill.evaluate import TorchPredictor, score
from distill.losses import (
    FeatureSelector,
    KdConfig,
    beam_kl,
    beam_loss,
    nmse_loss,
    pool_time,
    relation_loss,
)
from distill.models.blocks import AttentionTrace
from distill.models.student import Student
from distill.models.teacher import Teacher
from distill.robust import RobustInputs, noise_generator, robust_inputs
from distill.runtime import make_optimizer, setup_torch
from distill.tensors import Batch, TaskData


@dataclass(frozen=True)
class StudentTrainConfig:
    """Schedule of one student training run."""

    epochs: int
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    seed: int = 0
    fresh_noise: bool = True      # a new SRS noise draw per batch (``TaskData.batch``)


STUDENT_SCHEDULES: dict[str, StudentTrainConfig] = {
    "tiny": StudentTrainConfig(epochs=12),
    "demo": StudentTrainConfig(epochs=10),
    "std": StudentTrainConfig(epochs=8),
    "full": StudentTrainConfig(epochs=40, batch_size=128),
}


def student_schedule(preset: Preset, **overrides: Any) -> StudentTrainConfig:
    """The student schedule for ``preset`` with field overrides (``None`` values ignored)."""
    if preset.name not in STUDENT_SCHEDULES:
        raise ValueError(f"no student schedule for preset {preset.name!r}")
    return replace(STUDENT_SCHEDULES[preset.name],
                   **{k: v for k, v in overrides.items() if v is not None})


def _db(linear: float) -> float:
    return 10.0 * math.log10(max(linear, 1e-30))


@dataclass
class ImitationSchedule:
    """Decides per batch whether to query the teacher (imitation) or learn alone."""

    enabled: bool
    warmup_steps: int
    gap_scale_db: float = 3.0
    min_prob: float = 0.1
    smoothing: float = 0.9
    seed: int = 0
    student_db: float | None = None
    teacher_db: float | None = None
    queried: int = 0
    skipped: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def query_probability(self) -> float:
        """Probability of querying the teacher for the next batch."""
        steps = self.queried + self.skipped
        if not self.enabled or steps < self.warmup_steps or None in (self.student_db,
                                                                      self.teacher_db):
            return 1.0
        gap = float(self.student_db) - float(self.teacher_db)  # type: ignore[arg-type]
        return float(np.clip(gap / self.gap_scale_db, self.min_prob, 1.0))

    def should_query(self) -> bool:
        """Draw the decision for the next batch and count it."""
        ask = bool(self._rng.random() < self.query_probability())
        if ask:
            self.queried += 1
        else:
            self.skipped += 1
        return ask

    def _smooth(self, old: float | None, new: float) -> float:
        return new if old is None else self.smoothing * old + (1 - self.smoothing) * new

    def update(self, student_db: float, teacher_db: float | None) -> None:
        """Record the batch NMSE (dB) of the student, and of the teacher if it was queried."""
        self.student_db = self._smooth(self.student_db, student_db)
        if teacher_db is not None:
            self.teacher_db = self._smooth(self.teacher_db, teacher_db)


@dataclass
class KdReport:
    """Outcome of one student run."""

    label: str
    val_nmse_db: float
    val_beam_kl: float | None
    teacher_batches: int
    teacher_batches_skipped: int
    teacher_passes: int
    teacher_passes_saved: int
    steps: int
    wall_s: float
    loss_parts: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TeacherView:
    """The teacher's outputs for one batch, pooled to the student's token grid."""

    future: torch.Tensor
    logits: torch.Tensor
    hidden: list[torch.Tensor]
    qkv: tuple[torch.Tensor, ...]


def teacher_view(teacher: Teacher, history: torch.Tensor, n_cells: int) -> TeacherView:
    """Run the teacher on ``history`` without gradients and pool its trace to ``n_cells`` tokens."""
    with torch.no_grad():
        future, logits, trace = teacher.forward_traced(history)
    return TeacherView(future, logits, [pool_time(h, n_cells) for h in trace.hidden],
                       tuple(pool_time(x, n_cells) for x in trace.qkv[-1]))


def query_teacher(teacher: Teacher, batch: Batch, robust: RobustInputs | None,
                  n_cells: int) -> TeacherView:
    """``teacher_view`` of the batch's history, or with ``robust`` of its noiseless history with
    the predicted future brought to the student's scale."""
    if robust is None:
        return teacher_view(teacher, batch.history, n_cells)
    view = teacher_view(teacher, robust.teacher_history, n_cells)
    return replace(view, future=view.future * robust.teacher_to_student)


class Distiller(torch.nn.Module):
    """The learned parts of the KD loss (the feature selector) and the loss itself."""

    def __init__(self, student: Student, teacher: Teacher | None, kd: KdConfig) -> None:
        super().__init__()
        self.kd = kd
        self.selector: FeatureSelector | None = None
        if teacher is not None and kd.feature:
            self.selector = FeatureSelector(student.cfg.dim, teacher.cfg.dim,
                                            len(student.cfg.heads), teacher.cfg.depth)

    def loss(self, student: Student, batch: Batch, view: TeacherView | None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its weighted parts for one batch (``view`` None: own learning only)."""
        kd, trace = self.kd, AttentionTrace()
        future, logits = student.forward_traced(batch.history, trace)
        task = nmse_loss(future, batch.future)
        parts: dict[str, torch.Tensor] = {}
        if kd.task or view is None:
            parts["task"] = kd.task_weight * task
        if view is not None:
            if kd.output:
                parts["output"] = kd.output_weight * nmse_loss(future, view.future)
            if self.selector is not None:
                parts["feature"] = kd.feature_weight * self.selector(trace.hidden, view.hidden)
            if kd.relation:
                parts["relation"] = kd.relation_weight * relation_loss(
                    trace.qkv[-1], view.qkv, kd.relation_heads)
        soft = view.logits if (view is not None and kd.beam) else None
        parts["beam"] = kd.beam_weight * beam_loss(logits, batch.beam, soft, kd.temperature,
                                                   kd.beam_alpha)
        parts["_task_nmse"] = task.detach()
        total = torch.stack([v for k, v in parts.items() if not k.startswith("_")]).sum()
        return total, parts


def validation_beam_kl(student: Student, teacher: Teacher, val: TaskData,
                       batch_size: int = 256) -> float:
    """Mean ``KL(teacher || student)`` of the beam distributions at T = 1 on ``val``."""
    student.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in val.batches(batch_size):
            _, s_logits = student(batch.history)
            _, t_logits = teacher(batch.history)
            total += float(beam_kl(s_logits, t_logits, 1.0)) * len(batch.beam)
            count += len(batch.beam)
    return total / max(count, 1)


def train_student(student: Student, train: TaskData, val: TaskData, preset: Preset,
                  kd: KdConfig, cfg: StudentTrainConfig, teacher: Teacher | None = None,
                  progress: bool = True, label: str = "student") -> KdReport:
    """Train ``student`` in place (KD when ``teacher`` is given and ``kd`` uses it)."""
    setup_torch(cfg.seed)
    began = time.perf_counter()
    use_teacher = teacher is not None and kd.uses_teacher
    if use_teacher:
        assert teacher is not None
        teacher.eval()
    distiller = Distiller(student, teacher if use_teacher else None, kd)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    optimizer, scheduler = make_optimizer(
        list(student.parameters()) + list(distiller.parameters()), cfg.lr, cfg.weight_decay,
        total_steps, steps_per_epoch)
    schedule = ImitationSchedule(kd.adaptive and use_teacher, warmup_steps=steps_per_epoch,
                                 seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    noise = noise_generator(cfg.seed)
    fresh = np.random.default_rng(cfg.seed + 1) if cfg.fresh_noise else None
    passes = skipped_passes = 0
    sums: dict[str, float] = {}
    bar = tqdm(desc=label, unit="step", total=total_steps, disable=not progress)
    for _ in range(cfg.epochs):
        student.train()
        for given in train.batches(cfg.batch_size, rng, fresh):
            robust = (None if kd.robust_snr_db is None
                      else robust_inputs(given, kd.robust_snr_db, noise))
            batch = given if robust is None else robust.student
            view = None
            if use_teacher and schedule.should_query():
                assert teacher is not None
                view = query_teacher(teacher, given, robust, student.cfg.n_tokens)
                passes += len(batch.beam)
            elif use_teacher:
                skipped_passes += len(batch.beam)
            loss, parts = distiller.loss(student, batch, view)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            schedule.update(_db(float(parts["_task_nmse"])), None if view is None else
                            _db(float(nmse_loss(view.future, batch.future))))
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            bar.update(1)
            bar.set_postfix(task_db=f"{schedule.student_db:.2f}",
                            query_p=f"{schedule.query_probability():.2f}", refresh=False)
    bar.close()
    val_db = score(TorchPredictor(label, student, preset), val.history_complex(),
                   val.future_complex(), val.speed_kmh, preset).nmse_db
    kl = validation_beam_kl(student, teacher, val) if teacher is not None else None
    return KdReport(label, val_db, kl, schedule.queried if use_teacher else 0,
                    schedule.skipped if use_teacher else 0, passes, skipped_passes, total_steps,
                    time.perf_counter() - began,
                    {k: v / max(total_steps, 1) for k, v in sums.items()})


def sweep_temperature(make_student: Callable[[], Student], teacher: Teacher, train: TaskData,
                      val: TaskData, preset: Preset, kd: KdConfig, cfg: StudentTrainConfig,
                      temperatures: list[float], progress: bool = True
                      ) -> tuple[float, dict[float, float]]:
    """Train a fresh student (``make_student()``) per temperature; pick the lowest validation
    beam KL (teacher vs student at T = 1). Returns (best T, {T: KL})."""
    if not temperatures:
        raise ValueError("temperature sweep needs at least one temperature")
    results: dict[float, float] = {}
    for temperature in temperatures:
        report = train_student(make_student(), train, val, preset,
                               replace(kd, temperature=temperature), cfg, teacher, progress,
                               label=f"sweep T={temperature:g}")
        assert report.val_beam_kl is not None
        results[temperature] = report.val_beam_kl
    return min(results, key=lambda t: results[t]), results
