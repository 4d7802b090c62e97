"""``kdran distill orders`` on tiny: every order measured, QAT students hold up in INT8."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

from csi.presets import TINY
from distill.checkpoint import load_teacher, save_model
from distill.kd import student_schedule, train_student
from distill.losses import KdConfig
from distill.models.student import Student, student_config
from distill.orders import ORDERS, OrdersOptions, default_order, run_orders
from distill.pipeline import Sets
from distill.tensors import TaskData
from kdran.cli import main


@pytest.fixture(scope="module")
def student_kd(tiny_sets: Sets, tiny_teacher: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny KD student saved as ``kdran distill`` saves ``student_kd.pt``."""
    torch.set_num_threads(1)
    teacher, payload = load_teacher(tiny_teacher)
    student, kd = Student(student_config(TINY), TINY), KdConfig()
    train_student(student, TaskData.from_set(tiny_sets.train, TINY),
                  TaskData.from_set(tiny_sets.val, TINY), TINY, kd,
                  student_schedule(TINY, epochs=3), teacher, progress=False)
    path = tmp_path_factory.mktemp("run") / "student_kd.pt"
    save_model(path, "student", student, {"parent": payload["version"], "kd": asdict(kd)})
    return path


@pytest.fixture(scope="module")
def orders_run(tiny_root: Path, tiny_teacher: Path, student_kd: Path,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path, Path]:
    """(exit code, stdout, out dir, --json file) of one ``kdran distill orders`` run."""
    out = tmp_path_factory.mktemp("orders")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["distill", "orders", "--preset", "tiny", "--teacher", str(tiny_teacher),
                     "--student-kd", str(student_kd), "--data", str(tiny_root),
                     "--out", str(out / "study"), "--json", str(out / "table.json"),
                     "--recover-epochs", "1", "--calibration-size", "64",
                     "--latency-runs", "20", "--quiet"])
    return code, stdout.getvalue(), out / "study", out / "table.json"


def _rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["order"]: row for row in result["rows"]}


def test_orders_command_writes_the_table_and_json_with_every_order(
        orders_run: tuple[int, str, Path, Path]) -> None:
    code, stdout, out, json_path = orders_run
    assert code == 0, stdout
    result = json.loads(json_path.read_text())
    assert result == json.loads((out / "orders.json").read_text())
    assert result["preset"] == "tiny" and result["default_order"] == default_order
    assert result["teacher_version"].startswith("teacher-")
    assert result["recover_epochs"] == 1 and result["calibration_size"] == 64
    assert {"outdated", "ar", "student_kd"} <= set(result["reference"])
    rows = _rows(result)
    assert list(rows) == list(ORDERS)
    for name, row in rows.items():
        assert (out / f"order_{name}" / "student_int8.onnx").stat().st_size == row["size_bytes"]
        assert row["params"] > 0 and row["flops"] > 0
        assert 0 < row["p50_us"] <= row["p99_us"]
        assert row["train_s"] > 0 and row["steps_s"] >= row["train_s"]
        assert "all" in row["nmse_db_by_speed"] and len(row["nmse_db_by_speed"]) > 1
        assert f"{row['nmse_db']:.2f}" in stdout and ORDERS[name] in stdout
    # same pruning fractions in every order: the same architecture, whatever the order
    assert len({(r["params"], r["flops"]) for r in rows.values()}) == 1
    assert "order=A" in stdout and "reference:" in stdout


def test_qat_recovered_students_hold_up_in_int8(
        orders_run: tuple[int, str, Path, Path]) -> None:
    result = json.loads(orders_run[3].read_text())
    rows, outdated = _rows(result), result["reference"]["outdated"]
    for name in ("B", "C"):
        row = rows[name]
        assert row["nmse_db"] < outdated - 3.0, row                  # clearly beats outdated CSI
        assert abs(row["nmse_db"] - row["fp32_nmse_db"]) <= 0.5, row  # INT8 close to its fp32
        assert row["nmse_db"] <= rows["A"]["nmse_db"] + 0.3, row     # no worse than PTQ


def test_a_student_from_another_teacher_or_a_bad_order_is_refused(
        tiny_sets: Sets, tiny_teacher: Path, tmp_path: Path) -> None:
    stranger = tmp_path / "student_kd.pt"
    save_model(stranger, "student", Student(student_config(TINY), TINY),
               {"parent": "teacher-000000000000"})
    with pytest.raises(ValueError, match="pass its own teacher"):
        run_orders(TINY, tiny_teacher, stranger, tiny_sets, tmp_path / "out")
    with pytest.raises(ValueError, match="orders must be"):
        OrdersOptions(orders=("A", "D"))
    assert main(["distill", "orders", "--preset", "tiny", "--teacher", str(tiny_teacher),
                 "--student-kd", str(tmp_path / "missing.pt"), "--out",
                 str(tmp_path / "o")]) == 2
