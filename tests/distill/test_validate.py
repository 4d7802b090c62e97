"""Teacher validation: ECE and temperature scaling, the verdict, the CLI, the job's refusal."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from csi.dataset import ChannelSet
from csi.presets import STD, TINY
from distill.checkpoint import save_model
from distill.job import EXIT_ERROR, SpecError, parse_spec, run_job
from distill.models.teacher import Teacher, teacher_config
from distill.pipeline import Sets
from distill.validate import (
    TeacherNotValidated,
    TeacherVerdict,
    ValidationOptions,
    expected_calibration_error,
    fit_temperature,
    read_verdict,
    reliability,
    require_validated,
    validate_teacher,
    verdict_path,
)
from kdran.cli import main


def _sampled_labels(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row drawn from softmax(logits): logits calibrated by construction."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return (p.cumsum(axis=1) < rng.random((len(p), 1))).sum(axis=1)


@pytest.fixture(scope="module")
def calibrated() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    logits = rng.normal(scale=2.0, size=(40_000, 12))
    return logits, _sampled_labels(logits, rng)


def test_ece_of_calibrated_logits_is_near_zero(calibrated: tuple[np.ndarray, np.ndarray]) -> None:
    logits, labels = calibrated
    assert expected_calibration_error(logits, labels) < 0.015


def test_ece_matches_a_hand_computed_case() -> None:
    # four samples at confidence 0.7 (two classes), three of them right: |0.75 - 0.7| = 0.05
    logits = np.tile([np.log(0.7), np.log(0.3)], (4, 1))
    rel = reliability(logits, np.array([0, 0, 0, 1]), n_bins=15)
    assert rel.ece == pytest.approx(0.05)
    assert rel.count[10] == 4 and sum(rel.count) == 4       # 0.7 lies in (10/15, 11/15]
    assert rel.confidence[10] == pytest.approx(0.7) and rel.accuracy[10] == pytest.approx(0.75)
    assert rel.accuracy[0] is None


def test_temperature_scaling_fixes_over_confident_logits(
        calibrated: tuple[np.ndarray, np.ndarray]) -> None:
    logits, labels = calibrated
    over = 4.0 * logits                                     # same ranking, far too confident
    fit, held = slice(0, 20_000), slice(20_000, None)
    before = expected_calibration_error(over[held], labels[held])
    t = fit_temperature(over[fit], labels[fit])
    after = expected_calibration_error(over[held], labels[held], temperature=t)
    assert before > 0.2
    assert t == pytest.approx(4.0, rel=0.1)
    assert after < 0.02


def test_calibration_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="beam indices"):
        reliability(np.zeros((3, 4)), np.array([0, 1, 4]))
    with pytest.raises(ValueError, match=r"labels must be \[3\]"):
        reliability(np.zeros((3, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="ece_threshold"):
        ValidationOptions(ece_threshold=0.0)
    with pytest.raises(ValueError, match="must_beat"):
        ValidationOptions(must_beat=("oracle",))


@pytest.fixture(scope="module")
def bad_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny teacher with random weights everywhere: far worse than outdated CSI."""
    model = Teacher(teacher_config(TINY), TINY)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))
    path = tmp_path_factory.mktemp("bad") / "teacher.pt"
    save_model(path, "teacher", model)
    return path


@pytest.fixture(scope="module")
def heldout(tiny_root: Path) -> ChannelSet:
    from distill.data import load_or_generate

    return load_or_generate(TINY, "heldout-profile", tiny_root, progress=False)


@pytest.fixture(scope="module")
def bad_verdict(bad_teacher: Path, tiny_sets: Sets, heldout: ChannelSet) -> TeacherVerdict:
    return validate_teacher(bad_teacher, TINY, {"test": tiny_sets.test, "heldout-profile": heldout},
                            tiny_sets.val)


def test_a_teacher_worse_than_outdated_csi_fails_with_reasons(bad_verdict: TeacherVerdict) -> None:
    assert not bad_verdict.passed
    for name in ("test", "heldout-profile"):
        result = bad_verdict.sets[name]
        assert result.teacher_db > result.baselines_db["outdated"]
        assert any(r.startswith(f"{name}: teacher") and "does not beat outdated" in r
                   for r in bad_verdict.reasons)
    assert set(bad_verdict.sets["test"].baselines_db) == {"outdated", "ar", "kalman"}
    assert TeacherVerdict.from_dict(json.loads(json.dumps(bad_verdict.as_dict()))) == bad_verdict


def test_validation_needs_test_and_a_heldout_set(bad_teacher: Path, tiny_sets: Sets) -> None:
    with pytest.raises(ValueError, match="at least one held-out set"):
        validate_teacher(bad_teacher, TINY, {"test": tiny_sets.test}, tiny_sets.val)


def test_require_validated_checks_presence_outcome_preset_and_freshness(
        bad_teacher: Path, bad_verdict: TeacherVerdict, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes(bad_teacher.read_bytes())
    with pytest.raises(TeacherNotValidated, match="has no validation verdict"):
        require_validated(teacher, TINY)
    bad_verdict.write(verdict_path(teacher))
    with pytest.raises(TeacherNotValidated, match="failed validation: test: teacher"):
        require_validated(teacher, TINY)
    passing = replace(bad_verdict, passed=True, reasons=[])   # the check, not the measurement
    passing.write(verdict_path(teacher))
    assert require_validated(teacher, TINY) == passing
    with pytest.raises(TeacherNotValidated, match="validated for preset 'tiny', not 'std'"):
        require_validated(teacher, STD)
    teacher.write_bytes(teacher.read_bytes() + b"\0")
    with pytest.raises(TeacherNotValidated, match="stale"):
        require_validated(teacher, TINY)


def test_cli_prints_the_verdict_and_writes_json_and_png(
        bad_teacher: Path, tiny_root: Path, heldout: ChannelSet, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    plot, out = tmp_path / "rel.png", tmp_path / "verdict.json"
    code = main(["teacher", "validate", "--teacher", str(bad_teacher), "--preset", "tiny",
                 "--data-root", str(tiny_root), "--plot", str(plot), "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 3
    assert "FAILED: test: teacher" in printed and "beam ECE (15 bins, test)" in printed
    document = json.loads(out.read_text())
    assert document["passed"] is False and document["preset"] == "tiny"
    assert document == json.loads(verdict_path(bad_teacher).read_text())
    assert read_verdict(bad_teacher).teacher_sha256 == document["teacher_sha256"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_a_set_list_without_heldout(bad_teacher: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["teacher", "validate", "--teacher", str(bad_teacher), "--preset", "tiny",
                 "--sets", "test"]) == 2
    assert "at least one held-out set" in capsys.readouterr().err


def test_job_refuses_an_unvalidated_teacher(bad_teacher: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes(bad_teacher.read_bytes())
    spec = parse_spec({"data_dir": str(tmp_path), "teacher": str(teacher), "preset": "tiny",
                       "output_dir": str(tmp_path / "job")})
    assert spec.require_validated_teacher is True
    out = io.StringIO()
    assert run_job(spec, out) == EXIT_ERROR
    assert out.getvalue().startswith("phase=failed teacher refused: teacher ")
    assert "has no validation verdict" in out.getvalue()
    result = json.loads((tmp_path / "job" / "result.json").read_text())
    assert result["ok"] is False and result["refused"] == "teacher_not_validated"
    assert "kdran teacher validate" in result["reason"]


def test_require_validated_teacher_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="'require_validated_teacher' must be true or false"):
        parse_spec({"data_dir": str(tmp_path), "teacher": str(tmp_path), "preset": "tiny",
                    "output_dir": "x", "require_validated_teacher": "no"})
