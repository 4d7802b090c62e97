"""Robust distillation: a student trained on noisier SRS histories than its teacher sees.

With ``KdConfig.robust`` on (SNR range ``KdConfig.robust_snr_db`` = (lo, hi) dB) every training
batch is split in two inputs (``robust_inputs``):

- the **student** sees the observed (noisy) history with additional complex Gaussian noise, so that
  each sequence's total noise power is ``P / 10^(snr/10)`` for an SNR drawn uniformly from
  ``[lo, hi]`` dB per sequence (``renoise_history``). ``P`` is the sequence's mean channel power
  over all its time steps, antennas and RBs, as in ``csi.dataset.ChannelSet.observed``; the noise
  already in the observed history is measured (observed minus clean history) and only the missing
  part is added, so a drawn SNR above the sequence's native SNR adds nothing (it stays at the
  native SNR). The noise is drawn in torch from a seeded generator;
- the **teacher** sees the *noiseless* history (the batch carries the clean sequence,
  ``Batch.clean_seq``), so output, feature, relation and beam-KL targets are its clean-input
  outputs;
- the task loss still compares the student's prediction with the true (clean) future.

Each model gets its input at unit power per sequence, as ``csi.model_io.to_model_input`` gives it
at inference; the teacher's predicted future is brought to the student's scale
(``RobustInputs.teacher_to_student``) before output distillation.

``run_robust_stage`` adds the stage ``student_robust`` to a ``kdran distill`` run directory (``kdran
distill robust``): a student of the default size, seeded like the ablation's, trained with the
run's KD configuration (from its ``student_kd.pt``) plus robust inputs, saved as
``student_robust.pt``, exported to ``onnx/student_robust.onnx`` (fp32), scored and timed like the
other stages and written to ``robust.json``. It is a study row, never published.
``robust_predictors`` hands it to ``kdran bench accuracy --robustness``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from csi.predictors import Predictor
from csi.presets import Preset
from distill.losses import KdConfig
from distill.tensors import Batch

if TYPE_CHECKING:
    from distill.kd import StudentTrainConfig
    from distill.pipeline import Sets, StageRow

ROBUST_STAGE = "student_robust"
DEFAULT_ROBUST_SNR_DB = (0.0, 10.0)
RESULT_FILE = "robust.json"
_EPS = 1e-30


def mean_power(x: torch.Tensor) -> torch.Tensor:
    """Mean power per complex sample: ``[b, ..., 2]`` (real, imaginary) -> ``[b]``."""
    return x.pow(2).flatten(1).sum(dim=1) / x[..., 0].flatten(1).shape[1]


def unit_power(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``[b, t, a, r, 2]`` scaled to unit mean power per sequence, and the RMS
    ``[b, 1, 1, 1, 1]`` it was divided by (``csi.model_io.history_scale`` in torch)."""
    rms = mean_power(x).clamp_min(_EPS).sqrt().reshape(-1, *([1] * (x.dim() - 1)))
    return x / rms, rms


def draw_snr_db(n: int, snr_range: tuple[float, float],
                generator: torch.Generator) -> torch.Tensor:
    """``n`` SNRs in dB drawn uniformly from ``snr_range`` = (lo, hi) dB, float32 ``[n]``."""
    lo, hi = snr_range
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def renoise_history(batch: Batch, snr_db: torch.Tensor,
                    generator: torch.Generator) -> torch.Tensor:
    """The observed history of ``batch`` with extra noise up to ``snr_db`` ``[b]`` (dB) in total.

    Returns ``[b, history, antenna, rb, 2]`` on the batch's scale. Per sequence the target noise
    power is ``mean|clean sequence|^2 / 10^(snr/10)``; the power already present
    (``mean|history - clean history|^2``) is subtracted and the rest (never negative) is added as
    complex Gaussian noise (variance half per real component). ``batch`` is not modified.
    """
    steps = batch.history.shape[1]
    present = mean_power(batch.history - batch.clean_seq[:, :steps])
    target = mean_power(batch.clean_seq) / 10.0 ** (snr_db / 10.0)
    sigma = ((target - present).clamp_min(0.0) / 2.0).sqrt()
    noise = torch.randn(batch.history.shape, generator=generator, dtype=batch.history.dtype)
    return batch.history + sigma.reshape(-1, 1, 1, 1, 1) * noise


@dataclass
class RobustInputs:
    """One batch split for robust KD.

    ``student``: the batch the student trains on, its ``history`` re-noised and every tensor
    rescaled so that history has unit power per sequence (``future`` is still the clean future);
    ``teacher_history`` ``[b, history, antenna, rb, 2]``: the noiseless history at unit power;
    ``teacher_to_student`` ``[b, 1, 1, 1, 1]``: factor from the teacher's output scale to the
    student's; ``snr_db`` ``[b]``: the drawn SNRs (dB).
    """

    student: Batch
    teacher_history: torch.Tensor
    teacher_to_student: torch.Tensor
    snr_db: torch.Tensor


def robust_inputs(batch: Batch, snr_range: tuple[float, float],
                  generator: torch.Generator) -> RobustInputs:
    """Split ``batch`` (module docstring): noisier student input, noiseless teacher input."""
    steps = batch.history.shape[1]
    snr = draw_snr_db(batch.history.shape[0], snr_range, generator)
    noisy, student_rms = unit_power(renoise_history(batch, snr, generator))
    teacher, teacher_rms = unit_power(batch.clean_seq[:, :steps])
    student = Batch(noisy, batch.future / student_rms,
                    torch.cat([noisy, batch.noisy_seq[:, steps:] / student_rms], dim=1),
                    batch.clean_seq / student_rms, batch.beam)
    return RobustInputs(student, teacher, teacher_rms / student_rms, snr)


def noise_generator(seed: int) -> torch.Generator:
    """The CPU generator of the robust noise, seeded apart from the training seed's other uses."""
    return torch.Generator().manual_seed(seed + 7919)


def parse_snr_range(text: str) -> tuple[float, float]:
    """``"0,10"`` -> ``(0.0, 10.0)`` dB; ``ValueError`` unless two finite numbers with lo <= hi."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--snr-db wants LO,HI in dB, got {text!r}") from None
    if len(values) != 2 or not all(math.isfinite(v) for v in values) or values[0] > values[1]:
        raise ValueError(f"--snr-db wants LO,HI in dB (finite, LO <= HI), got {text!r}")
    return values[0], values[1]


def robust_predictors(run_dir: Path, preset: Preset) -> list[Predictor]:
    """``[student_robust]`` (torch, from ``run_dir/student_robust.pt``) if the run has one."""
    from distill.checkpoint import load_student
    from distill.evaluate import TorchPredictor

    path = run_dir / f"{ROBUST_STAGE}.pt"
    if not path.is_file():
        return []
    student, _ = load_student(path, preset)
    return [TorchPredictor(ROBUST_STAGE, student, preset)]


# ---- the stage ``kdran distill robust`` adds to a run ----------------------------------------

Log = Callable[[str], None]


@dataclass(frozen=True)
class RobustOptions:
    """What ``run_robust_stage`` can be told. ``snr_db``: student SNR range (dB); ``kd``: the KD
    configuration (``None``: that of the run's ``student_kd.pt``, else ``KdConfig()``);
    ``schedule``: ``None`` = the preset's student schedule; ``low_data``: seeded training
    fraction."""

    snr_db: tuple[float, float] = DEFAULT_ROBUST_SNR_DB
    kd: KdConfig | None = None
    schedule: StudentTrainConfig | None = None
    low_data: float = 1.0
    latency_runs: int = 300
    progress: bool = True

    def __post_init__(self) -> None:
        with_snr(KdConfig(), self.snr_db)            # the same range check as the KD option
        if not 0.0 < self.low_data <= 1.0:
            raise ValueError(f"low_data (training fraction) must be in (0, 1], got {self.low_data}")


@dataclass
class RobustResult:
    """What ``run_robust_stage`` produced: the stage table (the run's stages from its
    ``result.json`` when present, then ``student_robust``), the test score and training report of
    ``student_robust``, the KD configuration it used."""

    preset: str
    run_dir: str
    teacher_version: str
    snr_db: tuple[float, float]
    kd: dict[str, Any]
    kd_source: str
    onnx: str
    stages: list[StageRow]
    score: dict[str, Any]
    training: dict[str, Any]
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def with_snr(kd: KdConfig, snr_db: tuple[float, float]) -> KdConfig:
    """``kd`` with robust distillation on over ``snr_db`` = (lo, hi) dB."""
    return replace(kd, robust=True, robust_snr_lo_db=snr_db[0], robust_snr_hi_db=snr_db[1])


def run_kd_config(run_dir: Path) -> tuple[KdConfig, str]:
    """(``KdConfig`` of the run's ``student_kd.pt``, its path) or (``KdConfig()``, "default")."""
    from distill.checkpoint import read_checkpoint

    path = run_dir / "student_kd.pt"
    if not path.is_file():
        return KdConfig(), "default"
    return KdConfig(**read_checkpoint(path, "student")["meta"].get("kd", {})), str(path)


def check_run_teacher(run_dir: Path, teacher_path: Path) -> None:
    """``ValueError`` when ``run_dir/teacher.pt`` exists and holds other weights than
    ``teacher_path`` (a robust stage must learn from the run's own teacher)."""
    from distill.checkpoint import read_checkpoint

    own = run_dir / "teacher.pt"
    if not own.is_file() or (teacher_path.exists() and own.samefile(teacher_path)):
        return
    mine, given = (read_checkpoint(p, "teacher")["version"] for p in (own, teacher_path))
    if mine != given:
        raise ValueError(f"{run_dir} was distilled from {mine} ({own}), not from {given} "
                         f"({teacher_path}); pass the run's teacher")


def _previous_stages(run_dir: Path) -> list[StageRow]:
    """The run's stage rows from ``result.json`` (without an older ``student_robust``)."""
    import json

    from distill.pipeline import StageRow

    path = run_dir / "result.json"
    if not path.is_file():
        return []
    rows = json.loads(path.read_text()).get("stages", [])
    return [StageRow(**row) for row in rows if row["stage"] != ROBUST_STAGE]


def run_robust_stage(preset: Preset, teacher_path: Path, sets: Sets, run_dir: Path,
                     options: RobustOptions | None = None,
                     log: Log = lambda line: None) -> RobustResult:
    """Train, save, export, score and time ``student_robust`` in ``run_dir`` (module docstring);
    write ``run_dir/robust.json``."""
    from distill.evaluate import TorchPredictor
    from distill.export import export_onnx
    from distill.pipeline import DistillOptions, DistillRun, new_student
    from distill.reports import write_json
    from distill.runtime import setup_torch

    options = options or RobustOptions()
    began = time.perf_counter()
    check_run_teacher(run_dir, teacher_path)
    base, source = (options.kd, "given") if options.kd is not None else run_kd_config(run_dir)
    kd = with_snr(base, options.snr_db)
    run = DistillRun(preset, teacher_path, sets, run_dir,
                     DistillOptions(kd=kd, schedule=options.schedule, low_data=options.low_data,
                                    latency_runs=options.latency_runs,
                                    progress=options.progress), on_phase=log)
    log(f"{ROBUST_STAGE}: KD from {source} (T={kd.temperature:g}), student SNR "
        f"{options.snr_db[0]:g}..{options.snr_db[1]:g} dB, teacher on the noiseless history, "
        f"{len(run.train)} training sequences, {run.schedule.epochs} epochs")
    setup_torch(run.schedule.seed)
    student = run.train_student(ROBUST_STAGE, kd, new_student(preset))
    onnx = export_onnx(student, preset, run_dir / "onnx" / f"{ROBUST_STAGE}.onnx",
                       f"{ROBUST_STAGE}-{run.teacher_version}")
    log(f"{ROBUST_STAGE}: exported {onnx}; scoring and timing")
    run.stage(ROBUST_STAGE, student, onnx, TorchPredictor(ROBUST_STAGE, student, preset))
    result = RobustResult(preset.name, str(run_dir), run.teacher_version, options.snr_db,
                          asdict(kd), source, str(onnx), _previous_stages(run_dir) + run.rows,
                          run.scores[ROBUST_STAGE].as_dict(),
                          run.training[ROBUST_STAGE].as_dict(), time.perf_counter() - began)
    write_json(result, run_dir / RESULT_FILE)
    return result
