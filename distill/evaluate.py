"""Scoring learned predictors with ``csi.metrics``, and the predictors the accuracy bench adds.

- ``TorchPredictor(name, module, preset)``: a torch teacher/student behind the
  ``csi.predictors.Predictor`` protocol (batched, ``torch.no_grad``, ``csi.model_io`` scaling).
- ``OnnxPredictor(name, path, preset)``: an exported ONNX model, run with the dApp's
  ``dapp.runner.OnnxRunner`` when that package is importable, else an ONNX Runtime session here.
- ``learned_predictors(run_dir, preset)``: the rows ``teacher``, ``student_scratch``,
  ``student_kd``, ``student_pruned``, ``student_int8`` found in a ``kdran distill`` run directory.
- ``score``: NMSE (dB) overall, per horizon step and per speed bin, and best-beam top-1 accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csi.codebook import best_beam, dft_codebook
from csi.metrics import nmse_db, nmse_db_per_step, topk_beam_accuracy
from csi.model_io import INPUT_NAME, from_model_output, to_model_input
from csi.predictors import Predictor
from csi.presets import Preset

PREDICT_BATCH = 256
RUN_FILES: dict[str, str] = {          # predictor name -> file in a distill run directory
    "teacher": "teacher.pt",
    "student_scratch": "student_scratch.pt",
    "student_kd": "student_kd.pt",
    "student_pruned": "student_pruned.pt",
    "student_int8": "student_int8.onnx",
}


def _check_horizon(horizon: int, preset: Preset) -> None:
    if horizon > preset.horizon:
        raise ValueError(f"model predicts {preset.horizon} steps, {horizon} were asked for")


class TorchPredictor:
    """A torch model with ``forward(history) -> (future, beam_logits)`` as a ``Predictor``."""

    def __init__(self, name: str, module: torch.nn.Module, preset: Preset,
                 batch_size: int = PREDICT_BATCH) -> None:
        self.name = name
        self.module = module
        self.preset = preset
        self.batch_size = batch_size

    def predict_with_beams(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Complex ``[b, history, antenna, rb]`` -> (complex64 future ``[b, horizon, a, r]``,
        beam logits ``[b, n_beams]``)."""
        futures, logits = [], []
        self.module.eval()
        with torch.no_grad():
            for start in range(0, history.shape[0], self.batch_size):
                x, scale = to_model_input(history[start:start + self.batch_size])
                future, beam = self.module(torch.from_numpy(x))
                futures.append(from_model_output(future.numpy(), scale))
                logits.append(beam.numpy())
        return np.concatenate(futures), np.concatenate(logits)

    def predict(self, history: np.ndarray, horizon: int) -> np.ndarray:
        _check_horizon(horizon, self.preset)
        return self.predict_with_beams(history)[0][:, :horizon]


class OnnxPredictor:
    """An ONNX model file as a ``Predictor`` (one intra-op thread unless told otherwise)."""

    def __init__(self, name: str, path: Path, preset: Preset, threads: int = 1) -> None:
        self.name = name
        self.path = path
        self.preset = preset
        self._runner = _dapp_runner(path)
        self._session: Any = None
        if self._runner is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            self._session = ort.InferenceSession(str(path), options,
                                                 providers=["CPUExecutionProvider"])

    def predict_with_beams(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Same contract as ``TorchPredictor.predict_with_beams``."""
        futures, logits = [], []
        for start in range(0, history.shape[0], PREDICT_BATCH):
            future, beam = self._run(history[start:start + PREDICT_BATCH])
            futures.append(future)
            logits.append(beam)
        return np.concatenate(futures), np.concatenate(logits)

    def _run(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._runner is not None:
            future, beam = self._runner.predict_with_beams(history)
            return np.asarray(future), np.asarray(beam)
        x, scale = to_model_input(history)
        future, beam = self._session.run(None, {INPUT_NAME: x})
        return from_model_output(future, scale), beam

    def predict(self, history: np.ndarray, horizon: int) -> np.ndarray:
        _check_horizon(horizon, self.preset)
        return self.predict_with_beams(history)[0][:, :horizon]


def _dapp_runner(path: Path) -> Any:
    """The dApp's ``OnnxRunner`` for ``path`` if the dApp package provides it, else ``None``."""
    try:
        from dapp.runner import OnnxRunner  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    runner = OnnxRunner(path, max_batch=PREDICT_BATCH)
    return runner if hasattr(runner, "predict_with_beams") else None


@dataclass
class Score:
    """Accuracy of one predictor on one set: dB values, per-step list, per speed bin, top-1."""

    nmse_db: float
    nmse_db_per_step: list[float]
    nmse_db_by_speed: dict[str, float]
    beam_top1: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"nmse_db": self.nmse_db, "nmse_db_per_step": self.nmse_db_per_step,
                "nmse_db_by_speed": self.nmse_db_by_speed, "beam_top1": self.beam_top1}


def speed_bin_label(lo: float, hi: float) -> str:
    """``"10-40"`` style label (km/h) used by the bench JSON."""
    return f"{lo:g}-{hi:g}"


def nmse_by_speed(pred: np.ndarray, true: np.ndarray, speed_kmh: np.ndarray,
                  preset: Preset) -> dict[str, float]:
    """NMSE dB per ``preset.speed_bins()`` bin (empty bins left out) and ``"all"``."""
    out = {"all": nmse_db(pred, true)}
    for lo, hi in preset.speed_bins():
        rows = (speed_kmh >= lo) & (speed_kmh < hi)
        if rows.any():
            out[speed_bin_label(lo, hi)] = nmse_db(pred[rows], true[rows])
    return out


def score(predictor: Predictor, history: np.ndarray, future: np.ndarray, speed_kmh: np.ndarray,
          preset: Preset) -> Score:
    """Score ``predictor`` on complex ``history`` ``[b, t, a, r]`` vs clean ``future``."""
    beam_top1 = None
    predict_with_beams = getattr(predictor, "predict_with_beams", None)
    if predict_with_beams is not None:
        pred, logits = predict_with_beams(history)
        pred = pred[:, :future.shape[1]]
        labels = best_beam(future[:, 0], dft_codebook(preset))
        beam_top1 = topk_beam_accuracy(logits, labels, 1)
    else:
        pred = predictor.predict(history, future.shape[1])
    return Score(nmse_db(pred, future), [float(v) for v in nmse_db_per_step(pred, future)],
                 nmse_by_speed(pred, future, speed_kmh, preset), beam_top1)


def learned_predictors(run_dir: Path, preset: Preset) -> list[Predictor]:
    """The learned predictors of a ``kdran distill`` run, named as in ``RUN_FILES``.

    Only those whose files exist are returned; a run for another preset is a ``ValueError``.
    """
    from distill.checkpoint import load_student, load_teacher

    if not run_dir.is_dir():
        raise FileNotFoundError(f"no distillation run directory at {run_dir}")
    found: list[Predictor] = []
    for name, filename in RUN_FILES.items():
        path = run_dir / filename
        if not path.exists():
            continue
        if path.suffix == ".onnx":
            from distill.export import read_metadata

            onnx_preset = read_metadata(path).get("kdran_preset")
            if onnx_preset != preset.name:
                raise ValueError(f"{path} is a model for preset {onnx_preset!r}, "
                                 f"not {preset.name!r}")
            found.append(OnnxPredictor(name, path, preset))
            continue
        module, _ = (load_teacher if name == "teacher" else load_student)(path, preset)
        found.append(TorchPredictor(name, module, preset))
    return found
