"""Teacher training: resume from the per-epoch checkpoint; adaptation records its parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from csi.presets import TINY
from csi.synthetic import synthetic_set
from distill import train
from distill.checkpoint import load_teacher, read_checkpoint
from distill.train import adapt_teacher, default_schedule, progress_checkpoint, train_teacher

SMALL = default_schedule(TINY, pretrain_epochs=1, predict_epochs=2, batch_size=16)


def _interrupt_after_first_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the second validation (end of epoch 2) raise ``KeyboardInterrupt``."""
    calls = {"n": 0}
    real_validate = train.validate

    def validate_then_crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(train, "validate", validate_then_crash)


def test_interrupted_training_resumes_where_it_stopped(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data, val = synthetic_set(TINY, 32, seed=1), synthetic_set(TINY, 16, seed=2)
    out = tmp_path / "teacher.pt"
    _interrupt_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(TINY, data, val, out, SMALL, progress=False)
    assert progress_checkpoint(out).exists() and not out.exists()
    monkeypatch.undo()
    report = train_teacher(TINY, data, val, out, SMALL, progress=False)
    assert report.epochs_run == 2                      # epoch 1 of 3 was already done
    assert not progress_checkpoint(out).exists()
    assert read_checkpoint(out, "teacher")["version"] == report.version
    assert "val_nmse_db=" in report.line()


def test_resume_refuses_another_configuration(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data = synthetic_set(TINY, 16, seed=1)
    out = tmp_path / "teacher.pt"

    _interrupt_after_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(TINY, data, data, out, SMALL, progress=False)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="another configuration"):
        train_teacher(TINY, data, data, out, default_schedule(TINY, lr=1e-2), progress=False)


def test_adaptation_fine_tunes_and_names_its_parent(tiny_teacher: Path, tmp_path: Path) -> None:
    site = synthetic_set(TINY, 24, speed_range_kmh=(60.0, 90.0), seed=4)
    report = adapt_teacher(tiny_teacher, site, tmp_path / "adapted.pt",
                           default_schedule(TINY, pretrain_epochs=0, predict_epochs=1, lr=2e-4),
                           progress=False)
    _, payload = load_teacher(tmp_path / "adapted.pt")
    assert payload["meta"]["parent"] == read_checkpoint(tiny_teacher, "teacher")["version"]
    assert payload["meta"]["data_hash"] == site.content_hash()
    assert payload["version"] == report.version


def test_wrong_checkpoint_kind_is_a_clear_error(tiny_teacher: Path) -> None:
    with pytest.raises(ValueError, match="is a 'teacher' checkpoint, expected 'student'"):
        read_checkpoint(tiny_teacher, "student")
    with pytest.raises(FileNotFoundError, match="no teacher checkpoint"):
        read_checkpoint(Path("/nonexistent.pt"), "teacher")
