"""The tiny pipeline end to end on Sionna data: teacher -> KD -> prune -> ONNX -> INT8 -> gates ->
artifact, and a gate failure that must publish nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import onnxruntime as ort
import torch

from csi.presets import TINY
from distill.artifact import MODEL_FILE, verify_artifact
from distill.evaluate import OnnxPredictor, learned_predictors, score
from distill.gates import GateConfig
from distill.kd import student_schedule
from distill.pipeline import DistillOptions, Sets, format_stage_table, run_distillation
from distill.tensors import TaskData

FAST = DistillOptions(schedule=student_schedule(TINY, epochs=6), recover_epochs=2,
                      latency_runs=50, calibration_size=64, progress=False,
                      # tiny models trained for seconds do not beat AR/Wiener; outdated they must
                      gates=GateConfig(must_beat=("outdated",)))


def test_tiny_pipeline_publishes_an_artifact_that_beats_outdated_csi(
        tiny_sets: Sets, tiny_teacher: Path, tmp_path: Path) -> None:
    phases: list[str] = []
    result = run_distillation(TINY, tiny_teacher, tiny_sets, tmp_path / "run", FAST,
                              on_phase=phases.append)
    assert result.ok, result.reason
    assert phases == ["distilling", "pruning", "exporting", "quantizing", "gates", "published"]
    assert [r.stage for r in result.stages] == ["teacher", "student_scratch", "student_kd",
                                                "student_pruned", "student_int8"]
    assert "student_int8" in format_stage_table(result.stages)
    assert result.parity_max_abs <= 1e-4
    program = torch.export.load(str(tmp_path / "run" / "onnx" / "teacher.pt2")).module()
    assert program(torch.zeros(3, TINY.history, TINY.n_ant, TINY.n_rb, 2))[0].shape[0] == 3

    artifact = Path(str(result.artifact))
    card = verify_artifact(artifact)
    assert card["preset"] == "tiny" and card["gates_passed"]
    assert card["data_hash"] == tiny_sets.train.content_hash()
    assert card["parent_teacher_version"].startswith("teacher-")
    assert card["params"] > 0 and card["flops"] > 0 and card["size_bytes"] > 0
    assert {"outdated", "ar", "kalman", "teacher"} <= set(card["nmse_db"])

    # the published model loads in ONNX Runtime and beats outdated CSI on the tiny test split
    ort.InferenceSession(str(artifact / MODEL_FILE), providers=["CPUExecutionProvider"])
    test = TaskData.from_set(tiny_sets.test, TINY)
    int8 = score(OnnxPredictor("int8", artifact / MODEL_FILE, TINY), test.history_complex(),
                 test.future_complex(), test.speed_kmh, TINY)
    assert int8.nmse_db < result.scores["outdated"]["nmse_db"]
    # INT8 within 0.3 dB of the fp32 model it was quantized from
    assert abs(int8.nmse_db - result.scores["student_pruned"]["nmse_db"]) <= 0.3
    kd = result.training["student_kd"]            # every sample of every epoch: asked or saved
    assert kd["teacher_passes"] > 0
    assert kd["teacher_passes"] + kd["teacher_passes_saved"] == 6 * len(tiny_sets.train)

    names = [p.name for p in learned_predictors(tmp_path / "run", TINY)]
    assert names == ["teacher", "student_scratch", "student_kd", "student_pruned", "student_int8"]
    assert (tmp_path / "run" / "result.json").is_file()


def test_a_failed_gate_publishes_nothing_and_says_why(
        tiny_sets: Sets, tiny_teacher: Path, tmp_path: Path) -> None:
    options = replace(FAST, schedule=student_schedule(TINY, epochs=1), recover_epochs=1,
                      train_scratch=False, gates=GateConfig(must_beat=(), max_p99_us=1.0))
    phases: list[str] = []
    result = run_distillation(TINY, tiny_teacher, tiny_sets, tmp_path / "run", options,
                              on_phase=phases.append)
    assert not result.ok
    assert "published" not in phases
    assert result.artifact is None and not (tmp_path / "run" / "artifact").exists()
    assert "latency_p99" in result.reason and "> budget 1 us" in result.reason
    assert any(g.name == "latency_p99" and not g.passed for g in result.gates)

    # a rerun with the same recipe resumes the trained students instead of training them again
    again: list[str] = []
    rerun = run_distillation(TINY, tiny_teacher, tiny_sets, tmp_path / "run", options,
                             on_phase=again.append)
    assert [p.split(" from ")[0] for p in again if p.startswith("resumed")] == [
        "resumed student_kd", "resumed student_pruned"]
    assert rerun.scores["student_int8"] == result.scores["student_int8"]
    # another KD recipe trains afresh
    other: list[str] = []
    run_distillation(TINY, tiny_teacher, tiny_sets, tmp_path / "run",
                     replace(options, kd=replace(options.kd, temperature=8.0)),
                     on_phase=other.append)
    assert not any(p.startswith("resumed") for p in other)
