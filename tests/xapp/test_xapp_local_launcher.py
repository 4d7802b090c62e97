"""LocalJobLauncher: the job command as a subprocess, phases from its stdout, the deadline
enforced, failures with their reason."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from csi.presets import get_preset
from xapp.csi_export import to_channel_set
from xapp.jobs import JobSpec, parse_phase
from xapp.launch_local import LocalJobLauncher


def job_spec(tmp_path: Path) -> tuple[JobSpec, Path]:
    preset = get_preset("tiny")
    rng = np.random.default_rng(0)
    shape = (6, preset.seq_len, preset.n_ant, preset.n_rb)
    h = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    to_channel_set(h, preset, "test").save(tmp_path / "data")
    spec = JobSpec("j1", str(tmp_path / "data"), str(tmp_path / "out"), "tiny",
                   teacher=str(tmp_path / "teacher.pt"))
    return spec, spec.write(tmp_path)


def test_phases_and_artifact(tmp_path: Path, job_command: list[str]) -> None:
    spec, path = job_spec(tmp_path)
    phases: list[str] = []
    result = LocalJobLauncher(job_command, 60).run(spec, path, {"group": "g"}, phases.append)
    assert result.outcome == "succeeded" and result.version.startswith("kd-")
    assert result.artifact_dir == str(tmp_path / "out" / "artifact")
    assert phases == ["adapting", "distilling", "pruning", "exporting", "quantizing", "gates",
                      "published"]
    assert list(result.phases) == phases
    assert result.gates["retention"]["passed"] is True


def test_deadline_is_enforced(tmp_path: Path, job_command: list[str]) -> None:
    spec, path = job_spec(tmp_path)
    launcher = LocalJobLauncher(job_command, 1.5, env={"FAKE_JOB_MODE": "hang"})
    start = time.monotonic()
    result = launcher.run(spec, path, {}, lambda phase: None)
    assert time.monotonic() - start < 10
    assert result.outcome == "failed" and result.reason == "deadline of 1.5 s exceeded"
    assert "phase=distilling" in result.logs


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, killed but not yet reaped by init, counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_deadline_kills_the_whole_process_group(tmp_path: Path, job_command: list[str]) -> None:
    spec, path = job_spec(tmp_path)
    launcher = LocalJobLauncher(job_command, 1.0, env={"FAKE_JOB_MODE": "hang_tree"},
                                kill_grace_s=0.5)
    result = launcher.run(spec, path, {}, lambda phase: None)
    assert result.outcome == "failed" and result.reason == "deadline of 1 s exceeded"
    child = int((tmp_path / "out" / "child.pid").read_text())
    assert f"child={child}" in result.logs
    deadline = time.monotonic() + 5
    while alive(child):  # the child ignored SIGTERM; the group's SIGKILL got it
        assert time.monotonic() < deadline, f"child {child} survived the deadline"
        time.sleep(0.05)


def test_missing_command_and_silent_exit(tmp_path: Path) -> None:
    spec, path = job_spec(tmp_path)
    missing = LocalJobLauncher(["/nonexistent/kdran"], 5).run(spec, path, {}, lambda p: None)
    assert missing.outcome == "failed" and "cannot start /nonexistent/kdran" in missing.reason
    silent = LocalJobLauncher(["true"], 5).run(spec, path, {}, lambda p: None)
    assert silent.outcome == "failed" and "without an artifact" in silent.reason
    assert parse_phase("phase=gates\n") == "gates" and parse_phase("phased=x") is None
