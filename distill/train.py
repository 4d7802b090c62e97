"""Teacher training: masked-autoencoder pretraining, prediction training, and site adaptation.

``train_teacher`` runs ``pretrain_epochs`` of MAE over the three mask kinds (``distill.masks``,
denoising: the visible tokens are noisy SRS estimates, the targets are the clean patches), then
``predict_epochs`` of the prediction task (the time mask that hides exactly the future). After every
epoch it writes a resumable checkpoint (``<out>.ckpt``: weights, optimizer, scheduler, epoch, RNG
state); a rerun with the same ``out`` continues from there. The final teacher goes to ``out``.

``adapt_teacher`` fine-tunes an existing teacher on recent site data (prediction task only, small
learning rate): the first phase of a re-distillation job.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from csi.dataset import ChannelSet
from csi.presets import Preset
from distill.checkpoint import load_teacher, save_model
from distill.evaluate import TorchPredictor, score
from distill.losses import nmse_loss
from distill.masks import MASK_KINDS, make_mask
from distill.models.teacher import Teacher, patchify, teacher_config
from distill.runtime import count_params, make_optimizer, setup_torch
from distill.tensors import Batch, TaskData


@dataclass(frozen=True)
class TeacherTrainConfig:
    """Schedule of one teacher training run."""

    pretrain_epochs: int
    predict_epochs: int
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    mask_ratio: float = 0.5
    seed: int = 0
    fresh_noise: bool = True      # a new SRS noise draw per batch (``TaskData.batch``)


TRAIN_SCHEDULES: dict[str, TeacherTrainConfig] = {
    "tiny": TeacherTrainConfig(pretrain_epochs=4, predict_epochs=12, batch_size=32, lr=2e-3),
    "demo": TeacherTrainConfig(pretrain_epochs=2, predict_epochs=6),
    "std": TeacherTrainConfig(pretrain_epochs=1, predict_epochs=5, lr=2e-3),
    "full": TeacherTrainConfig(pretrain_epochs=40, predict_epochs=60, batch_size=128),
}
ADAPT_SCHEDULE = TeacherTrainConfig(pretrain_epochs=0, predict_epochs=3, lr=2e-4,
                                    weight_decay=0.01)


def default_schedule(preset: Preset, **overrides: Any) -> TeacherTrainConfig:
    """The training schedule for ``preset`` with field overrides (``None`` values ignored)."""
    if preset.name not in TRAIN_SCHEDULES:
        raise ValueError(f"no teacher schedule for preset {preset.name!r}")
    return replace(TRAIN_SCHEDULES[preset.name],
                   **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class TeacherReport:
    """Outcome of a teacher run: validation NMSE (dB) and how long it took."""

    version: str
    params: int
    val_nmse_db: float
    epochs_run: int
    wall_s: float

    def line(self) -> str:
        """The final metrics line the CLI prints."""
        return (f"teacher {self.version}: params={self.params} val_nmse_db={self.val_nmse_db:.2f} "
                f"epochs={self.epochs_run} wall_s={self.wall_s:.1f}")


def mae_loss(model: Teacher, batch: Batch, kind: str, ratio: float,
             gen: torch.Generator) -> torch.Tensor:
    """Denoising MAE loss of one batch under mask ``kind``: NMSE on the masked clean patches."""
    visible, masked = make_mask(kind, model.cfg, batch.noisy_seq.shape[0], ratio, gen)
    recon = model.reconstruct(batch.noisy_seq, visible, masked)
    target = torch.gather(patchify(batch.clean_seq, model.cfg), 1,
                          masked[..., None].expand(-1, -1, model.cfg.patch_size))
    return nmse_loss(recon, target)


def predict_loss(model: Teacher, batch: Batch) -> torch.Tensor:
    """Prediction loss: NMSE of the decoded future vs the clean future."""
    future, _ = model(batch.history)
    return nmse_loss(future, batch.future)


def validate(model: Teacher, val: TaskData, preset: Preset) -> float:
    """Validation NMSE in dB (``csi.metrics``) of the teacher's prediction."""
    predictor = TorchPredictor("teacher", model, preset)
    return score(predictor, val.history_complex(), val.future_complex(), val.speed_kmh,
                 preset).nmse_db


def _phase_of(epoch: int, cfg: TeacherTrainConfig) -> str:
    return "pretrain" if epoch < cfg.pretrain_epochs else "predict"


def _run_epochs(model: Teacher, train: TaskData, val: TaskData, preset: Preset,
                cfg: TeacherTrainConfig, ckpt: Path | None, progress: bool,
                label: str) -> tuple[float, int]:
    """Train ``model`` for the schedule, resuming from ``ckpt``; return (val dB, epochs run)."""
    total_epochs = cfg.pretrain_epochs + cfg.predict_epochs
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    optimizer, scheduler = make_optimizer(list(model.parameters()), cfg.lr, cfg.weight_decay,
                                          total_epochs * steps_per_epoch, steps_per_epoch)
    rng, gen = np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    start, val_db = 0, float("nan")
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state["train_config"] != asdict(cfg) or state["model_config"] != asdict(model.cfg):
            raise ValueError(f"checkpoint {ckpt} was written for another configuration; "
                             "delete it or use another --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["numpy_rng"]
        gen.set_state(state["torch_rng"])
        start, val_db = state["epoch"], state["val_nmse_db"]
    fresh = np.random.default_rng(cfg.seed + 1) if cfg.fresh_noise else None
    bar = tqdm(desc=label, unit="step", disable=not progress, total=total_epochs * steps_per_epoch,
               initial=start * steps_per_epoch)
    for epoch in range(start, total_epochs):
        model.train()
        phase, losses = _phase_of(epoch, cfg), []
        for i, batch in enumerate(train.batches(cfg.batch_size, rng, fresh)):
            loss = (mae_loss(model, batch, MASK_KINDS[i % len(MASK_KINDS)], cfg.mask_ratio, gen)
                    if phase == "pretrain" else predict_loss(model, batch))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, phase=phase, loss=f"{np.mean(losses):.4f}",
                            val_db=f"{val_db:.2f}", refresh=False)
        val_db = validate(model, val, preset)
        bar.set_postfix(epoch=epoch + 1, phase=phase, loss=f"{np.mean(losses):.4f}",
                        val_db=f"{val_db:.2f}")
        if ckpt is not None:
            _save_progress(ckpt, model, optimizer, scheduler, rng, gen, cfg, epoch + 1, val_db)
    bar.close()
    return val_db, total_epochs - start


def _save_progress(ckpt: Path, model: Teacher, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LambdaLR, rng: np.random.Generator,
                   gen: torch.Generator, cfg: TeacherTrainConfig, epoch: int,
                   val_db: float) -> None:
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "numpy_rng": rng.bit_generator.state,
                "torch_rng": gen.get_state(), "epoch": epoch, "val_nmse_db": val_db,
                "train_config": asdict(cfg), "model_config": asdict(model.cfg)}, tmp)
    tmp.replace(ckpt)


def progress_checkpoint(out: Path) -> Path:
    """Where the resumable per-epoch checkpoint of a run writing ``out`` lives."""
    return out.with_name(out.name + ".ckpt")


def train_teacher(preset: Preset, train: ChannelSet, val: ChannelSet, out: Path,
                  cfg: TeacherTrainConfig, progress: bool = True,
                  size_overrides: dict[str, int] | None = None) -> TeacherReport:
    """Pretrain + train a teacher for ``preset`` and save it to ``out`` (resumable)."""
    setup_torch(cfg.seed)
    began = time.perf_counter()
    model = Teacher(teacher_config(preset, **(size_overrides or {})), preset)
    train_data, val_data = TaskData.from_set(train, preset), TaskData.from_set(val, preset)
    ckpt = progress_checkpoint(out)
    val_db, epochs = _run_epochs(model, train_data, val_data, preset, cfg, ckpt, progress,
                                 f"teacher[{preset.name}]")
    version = save_model(out, "teacher", model, {
        "parent": None, "data_hash": train.content_hash(), "val_nmse_db": val_db,
        "train_config": asdict(cfg)})
    ckpt.unlink(missing_ok=True)
    return TeacherReport(version, count_params(model), val_db, epochs,
                         time.perf_counter() - began)


def adapt_teacher(teacher_path: Path, data: ChannelSet, out: Path,
                  cfg: TeacherTrainConfig = ADAPT_SCHEDULE, val_fraction: float = 0.2,
                  progress: bool = True) -> TeacherReport:
    """Fine-tune the teacher at ``teacher_path`` on ``data`` (prediction task) and save to ``out``.

    ``val_fraction`` of ``data`` (seeded) is held back to report the adapted validation NMSE.
    """
    setup_torch(cfg.seed)
    began = time.perf_counter()
    model, payload = load_teacher(teacher_path)
    from csi.presets import get_preset

    preset = get_preset(payload["preset"])
    if len(data) < 2:
        raise ValueError(f"adaptation data has {len(data)} sequences; need at least 2")
    order = np.random.default_rng(cfg.seed).permutation(len(data))
    n_val = max(1, round(val_fraction * len(data)))
    everything = TaskData.from_set(data, preset)
    val = everything.subset(np.sort(order[:n_val]))
    train = everything.subset(np.sort(order[n_val:]))
    val_db, epochs = _run_epochs(model, train, val, preset, cfg, None, progress,
                                 f"adapt[{preset.name}]")
    version = save_model(out, "teacher", model, {
        "parent": payload["version"], "data_hash": data.content_hash(), "val_nmse_db": val_db,
        "train_config": asdict(cfg)})
    return TeacherReport(version, count_params(model), val_db, epochs,
                         time.perf_counter() - began)
