"""Robust distillation: the student's noise injection, a short robust KD run, ``kdran distill
robust`` on a tiny run directory and its row in the robustness sweep."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from csi.dataset import ChannelSet
from csi.presets import TINY
from csi.synthetic import synthetic_set
from distill.checkpoint import load_student, load_teacher, save_model
from distill.export import example_input
from distill.kd import StudentTrainConfig, query_teacher, train_student
from distill.losses import KdConfig, nmse_loss
from distill.models.student import Student
from distill.models.teacher import Teacher, teacher_config
from distill.pipeline import Sets, new_student
from distill.robust import (
    ROBUST_STAGE,
    RobustOptions,
    mean_power,
    noise_generator,
    parse_snr_range,
    renoise_history,
    robust_inputs,
    unit_power,
    with_snr,
)
from distill.robustness import run_robustness
from distill.runtime import setup_torch
from distill.tensors import Batch, TaskData
from kdran.cli import main

H = TINY.history


def _batch(snr_db: float, n: int = 64) -> Batch:
    data = synthetic_set(TINY, n, speed_range_kmh=(10.0, 100.0), snr_db=snr_db, n_paths=4, seed=5)
    return TaskData.from_set(data, TINY).batch(np.arange(n))


def measured_snr_db(history: torch.Tensor, clean_seq: torch.Tensor) -> torch.Tensor:
    """Per sequence: mean clean-sequence power over the history's noise power, in dB ``[b]``."""
    return 10.0 * torch.log10(mean_power(clean_seq) / mean_power(history - clean_seq[:, :H]))


@pytest.mark.parametrize("snr_db", [0.0, 7.5])
def test_renoising_hits_the_requested_snr(snr_db: float) -> None:
    batch = _batch(40.0)                  # native noise 40 dB down: negligible against the target
    noisy = renoise_history(batch, torch.full((64,), snr_db), noise_generator(0))
    measured = measured_snr_db(noisy, batch.clean_seq)
    assert float(measured.mean()) == pytest.approx(snr_db, abs=0.1)
    assert float((measured - snr_db).abs().max()) < 0.75     # 768 complex samples per sequence


def test_robust_inputs_noise_the_student_only_and_keep_scales_consistent() -> None:
    batch = _batch(40.0)
    before = batch.history.clone()
    split = robust_inputs(batch, (0.0, 10.0), noise_generator(0))
    assert torch.equal(batch.history, before)                          # the batch is untouched
    assert split.snr_db.min() >= 0.0 and split.snr_db.max() <= 10.0
    assert float(split.snr_db.max() - split.snr_db.min()) > 5.0        # drawn per sequence
    student = split.student
    measured = measured_snr_db(student.history, student.clean_seq)
    assert float((measured - split.snr_db).abs().max()) < 0.75
    assert torch.allclose(mean_power(student.history), torch.ones(64), atol=1e-5)
    # the teacher sees the noiseless history at unit power; in student units it is the student's
    # clean history, so its predicted future can be compared with the student's on one scale
    clean = batch.clean_seq[:, :H]
    assert torch.allclose(split.teacher_history, unit_power(clean)[0])
    assert torch.allclose(split.teacher_history * split.teacher_to_student,
                          student.clean_seq[:, :H], atol=1e-5)
    # the task target is still the true future, on the student's scale
    assert float(nmse_loss(student.future, student.clean_seq[:, H:])) < 1e-10
    assert torch.equal(student.beam, batch.beam)
    again = robust_inputs(batch, (0.0, 10.0), noise_generator(0))
    assert torch.equal(again.student.history, student.history)        # seeded


def test_noise_above_the_native_snr_is_not_added_and_ranges_are_checked() -> None:
    batch = _batch(5.0)
    same = renoise_history(batch, torch.full((64,), 15.0), noise_generator(0))
    assert torch.equal(same, batch.history)
    assert parse_snr_range("0, 10") == (0.0, 10.0)
    for bad in ("10,0", "5", "a,b", "0,inf"):
        with pytest.raises(ValueError, match="LO,HI"):
            parse_snr_range(bad)
    with pytest.raises(ValueError, match="robust SNR range"):
        RobustOptions(snr_db=(3.0, 1.0))
    assert with_snr(KdConfig(), (1.0, 4.0)).robust_snr_db == (1.0, 4.0)
    assert KdConfig().robust_snr_db is None


def _teacher_gap(student: Student, teacher: Teacher, batch: Batch) -> float:
    """NMSE (dB) of the student on fixed noisy inputs (0-10 dB) against the teacher's clean-input
    prediction."""
    split = robust_inputs(batch, (0.0, 10.0), torch.Generator().manual_seed(123))
    target = query_teacher(teacher, batch, split, student.cfg.n_tokens).future
    student.eval()
    with torch.no_grad():
        return 10.0 * float(torch.log10(nmse_loss(student(split.student.history)[0], target)))


def test_a_short_robust_kd_run_learns_the_teachers_clean_outputs_from_noisy_inputs(
        tiny_sets: Sets, tiny_teacher: Path) -> None:
    teacher, _ = load_teacher(tiny_teacher, TINY)
    data = TaskData.from_set(tiny_sets.train, TINY).subset(np.arange(32))
    batch = data.batch(np.arange(32))
    schedule = StudentTrainConfig(epochs=100, batch_size=32, lr=1e-2)   # 100 steps, one batch
    students = {}
    for name, kd in (("plain", KdConfig(adaptive=False)),
                     ("robust", with_snr(KdConfig(adaptive=False), (0.0, 10.0)))):
        setup_torch(0)
        students[name] = new_student(TINY)
        if name == "plain":
            start = _teacher_gap(students[name], teacher, batch)
        train_student(students[name], data, data, TINY, kd, schedule, teacher, progress=False)
    robust, plain = (_teacher_gap(students[n], teacher, batch) for n in ("robust", "plain"))
    # measured at this seed: start -6.06 dB, plain KD -6.90, robust KD -8.42
    assert robust < start - 1.5, (start, robust)
    assert robust < plain - 0.75, (plain, robust)     # the plain student never saw such noise


def test_the_action_adds_student_robust_to_a_run_and_the_sweep_lists_it(
        tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    setup_torch(1)
    save_model(run / "teacher.pt", "teacher", Teacher(teacher_config(TINY), TINY))
    save_model(run / "student_kd.pt", "student", new_student(TINY),
               {"kd": asdict(KdConfig(temperature=2.0))})
    kd_row = {"stage": "student_kd", "params": 1, "flops": 2, "size_bytes": 3, "nmse_db": -4.0,
              "p50_us": 5.0, "p99_us": 6.0}
    (run / "result.json").write_text(json.dumps({"stages": [kd_row]}))
    other = tmp_path / "other.pt"
    save_model(other, "teacher", Teacher(teacher_config(TINY), TINY))
    common = ["distill", "robust", "--preset", "tiny", "--out", str(run), "--data-root",
              str(tiny_root), "--quiet"]
    assert main([*common, "--teacher", str(other)]) == 2
    assert "not from teacher-" in capsys.readouterr().err

    rc = main([*common, "--epochs", "1", "--low-data", "0.25", "--snr-db", "0,8",
               "--latency-runs", "20"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    table = printed[printed.index("stage "):]
    assert [line.split()[0] for line in table.splitlines()[2:4]] == ["student_kd", ROBUST_STAGE]
    result = json.loads((run / "robust.json").read_text())
    assert result["kd"]["robust"] and result["snr_db"] == [0.0, 8.0]
    assert result["kd"]["temperature"] == 2.0 and result["kd_source"].endswith("student_kd.pt")
    assert [r["stage"] for r in result["stages"]] == ["student_kd", ROBUST_STAGE]
    assert load_student(run / f"{ROBUST_STAGE}.pt", TINY)[1]["meta"]["kd"]["robust"] is True

    session = ort.InferenceSession(str(run / "onnx" / f"{ROBUST_STAGE}.onnx"),
                                   providers=["CPUExecutionProvider"])
    future, logits = session.run(None, {"history": example_input(TINY).numpy()})
    assert future.shape == (2, TINY.horizon, TINY.n_ant, TINY.n_rb, 2)
    assert logits.shape == (2, TINY.n_beams) and np.isfinite(future).all()

    sweep = run_robustness(TINY, tiny_root, run, snrs=(0.0, 20.0), n=12, progress=False)
    snr_names = list(dict.fromkeys(r["predictor"] for r in sweep["snr_rows"]))
    assert snr_names[-3:] == ["teacher", "student_kd", ROBUST_STAGE]
    assert {r["snr_db"] for r in sweep["snr_rows"] if r["predictor"] == ROBUST_STAGE} == {0.0, 20.0}
    assert {r["set"] for r in sweep["speed_rows"] if r["predictor"] == ROBUST_STAGE} == {
        "test", "heldout-speed"}


def test_the_channel_set_noise_and_the_batch_noise_agree() -> None:
    """Same definition of SNR as ``ChannelSet.observed``: a set observed at 3 dB measures 3 dB."""
    data: ChannelSet = synthetic_set(TINY, 64, speed_range_kmh=(10.0, 100.0), snr_db=3.0,
                                     n_paths=4, seed=5)
    batch = TaskData.from_set(data, TINY).batch(np.arange(64))
    assert float(measured_snr_db(batch.history, batch.clean_seq).mean()) == pytest.approx(
        3.0, abs=0.1)
