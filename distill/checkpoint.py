"""Saving and loading model checkpoints (teacher and student) as plain ``torch.save`` dicts.

A checkpoint is ``{"kind", "preset", "config", "state_dict", "version", "meta"}`` with only tensors,
strings, numbers, lists and dicts inside, so it loads with ``torch.load(weights_only=True)``.
``version`` is derived from the weights (``<kind>-<12 hex of sha256>``), so the same weights always
carry the same version and a model card can cite its parent teacher unambiguously.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from csi.presets import Preset, get_preset
from distill.models.student import Student, StudentConfig
from distill.models.teacher import Teacher, TeacherConfig

KINDS = ("teacher", "student")


def weights_version(kind: str, module: torch.nn.Module) -> str:
    """``<kind>-<first 12 hex of sha256 over the state dict>``."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{kind}-{digest.hexdigest()[:12]}"


def save_model(path: Path, kind: str, module: Teacher | Student,
               meta: dict[str, Any] | None = None) -> str:
    """Write the checkpoint atomically (tmp + rename); return its version."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; known: {list(KINDS)}")
    version = weights_version(kind, module)
    payload = {"kind": kind, "preset": module.cfg.preset, "config": module.config_dict(),
               "state_dict": module.state_dict(), "version": version, "meta": meta or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return version


def read_checkpoint(path: Path, kind: str) -> dict[str, Any]:
    """Load and check a checkpoint of ``kind``; clear errors for a missing or wrong file."""
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} checkpoint at {path}")
    try:
        payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt/foreign file
        raise ValueError(f"{path} is not a kdran checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path} is a {found!r} checkpoint, expected {kind!r}")
    return payload


def _check_preset(path: Path, payload: dict[str, Any], expected: Preset | None) -> Preset:
    """The checkpoint's preset; ``ValueError`` when it is not ``expected`` (if given)."""
    if expected is not None and payload["preset"] != expected.name:
        raise ValueError(f"{path} was trained for preset {payload['preset']!r}, "
                         f"not {expected.name!r}")
    return get_preset(payload["preset"])


def load_teacher(path: Path, preset: Preset | None = None) -> tuple[Teacher, dict[str, Any]]:
    """(teacher in eval mode, checkpoint dict without the weights); with ``preset``, a teacher
    trained for another preset is refused (``ValueError``)."""
    payload = read_checkpoint(path, "teacher")
    preset = _check_preset(path, payload, preset)
    model = Teacher(TeacherConfig(**payload["config"]), preset)
    model.load_state_dict(payload.pop("state_dict"))
    return model.eval(), payload


def load_student(path: Path, preset: Preset | None = None) -> tuple[Student, dict[str, Any]]:
    """(student in eval mode, checkpoint dict without the weights); with ``preset``, a student
    trained for another preset is refused (``ValueError``)."""
    payload = read_checkpoint(path, "student")
    preset = _check_preset(path, payload, preset)
    model = Student(StudentConfig.from_dict(payload["config"]), preset)
    model.load_state_dict(payload.pop("state_dict"))
    return model.eval(), payload


def checkpoint_preset(payload: dict[str, Any]) -> Preset:
    """The preset a loaded checkpoint was trained for."""
    return get_preset(payload["preset"])
