"""The re-distillation job: spec validation with clear errors, phases, exit codes, result.json."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from csi.presets import TINY
from distill.data import DEFAULT_ROOT  # noqa: F401  (the data package must import cheaply)
from distill.job import EXIT_ERROR, EXIT_GATES_FAILED, SpecError, load_spec, parse_spec, run_job
from kdran.cli import main


def _spec(tmp_path: Path, teacher: Path, data: Path, **extra: object) -> dict[str, object]:
    return {"data_dir": str(data), "teacher": str(teacher), "preset": "tiny",
            "output_dir": str(tmp_path / "job"), **extra}


@pytest.mark.parametrize(("change", "words"), [
    ({"preset": "huge"}, "unknown preset 'huge'"),
    ({"teacher": "/nonexistent/teacher.pt"}, "'teacher': /nonexistent/teacher.pt does not exist"),
    ({"gates": {"min_retension": 0.5}}, "unknown gate settings ['min_retension']"),
    ({"student_epochs": 0}, "'student_epochs' must be a positive integer"),
    ({"test_fraction": 1.5}, "'test_fraction' must be a number in (0, 1)"),
    ({"colour": "blue"}, "unknown field(s) ['colour']"),
])
def test_bad_specs_name_the_problem(tmp_path: Path, change: dict[str, object],
                                    words: str) -> None:
    teacher = tmp_path / "t.pt"
    teacher.write_bytes(b"")
    spec = {**_spec(tmp_path, teacher, tmp_path), **change}
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert words in str(info.value)


def test_missing_fields_and_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"missing required field\(s\) \['teacher', 'preset'"):
        parse_spec({"data_dir": ".", "output_dir": "x"})
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(bad)


def test_cli_reports_a_bad_spec_and_exits_2(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"preset": "tiny"}))
    assert main(["job", "run", "--spec", str(spec)]) == EXIT_ERROR
    assert "phase=failed bad job spec: spec is missing required field(s)" in capsys.readouterr().out


def test_job_adapts_distills_and_refuses_a_model_that_fails_a_gate(
        tiny_root: Path, tiny_teacher: Path, tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(_spec(
        tmp_path, tiny_teacher, tiny_root / TINY.name / "val", adapt_epochs=1, student_epochs=1,
        gates={"must_beat": [], "max_p99_us": 1.0}, require_validated_teacher=False)))
    out = io.StringIO()
    code = run_job(load_spec(spec_path), out)
    phases = [line.split()[0] for line in out.getvalue().splitlines()
              if line.startswith("phase=")]
    assert phases == ["phase=adapting", "phase=distilling", "phase=pruning", "phase=exporting",
                      "phase=quantizing", "phase=gates", "phase=failed"]
    assert code == EXIT_GATES_FAILED
    result = json.loads((tmp_path / "job" / "result.json").read_text())
    assert result["ok"] is False and "latency_p99" in result["reason"]
    assert result["adapted_teacher"]["version"].startswith("teacher-")
    assert not (tmp_path / "job" / "artifact").exists()


def test_job_failure_writes_a_reason(tiny_teacher: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    spec = parse_spec(_spec(tmp_path, tiny_teacher, empty, require_validated_teacher=False))
    out = io.StringIO()
    assert run_job(spec, out) == EXIT_ERROR
    assert "phase=failed FileNotFoundError: no channel set" in out.getvalue()
    result = json.loads((tmp_path / "job" / "result.json").read_text())
    assert result["ok"] is False and "no channel set" in result["reason"]
