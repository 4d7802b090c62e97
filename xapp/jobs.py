"""Re-distillation jobs as the xApp sees them: the spec it writes, the result it reads, and the
interface both launchers (local subprocess, Kubernetes Job) implement.

A job runs ``kdran job run --spec <spec.json>`` (``distill/job.py``). The spec file holds exactly
the fields the job accepts: the recent-CSI data directory (a ``csi.dataset.ChannelSet``), the base
teacher checkpoint, the preset, the output directory, the gate thresholds and, when known, the
deployed model to beat. The job prints ``phase=<name>`` lines (``PHASES``), writes ``result.json``
(``ok``, ``reason``, ``artifact``, ``gates`` as a list of ``{name, passed, value, threshold,
reason}``) into the output directory and, when every gate passed, the artifact (``model.onnx``,
``card.json`` with the ``version``, ``SHA256SUMS``) under ``artifact``. Exit codes: 0 published,
``EXIT_GATES_FAILED`` (3) gates refused the model, anything else an error.

Outcomes: ``succeeded`` (artifact published), ``gates_failed`` (the job ran, the candidate did not
pass its gates; nothing published), ``failed`` (anything else, with a reason), and, set by the
xApp before launching, ``no_data`` (the dApps did not hold enough recent CSI yet; not a failure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

PHASES = ("adapting", "distilling", "pruning", "exporting", "quantizing", "gates", "published",
          "failed")
"""Phases a job reports, in order."""
OUTCOMES = ("succeeded", "failed", "gates_failed", "no_data")
SPEC_FILE = "spec.json"
RESULT_FILE = "result.json"
EXIT_GATES_FAILED = 3
_PHASE_LINE = re.compile(r"^phase=([a-z_]+)\b")


@dataclass(frozen=True)
class JobSpec:
    """A job as the xApp tracks it. Paths are as the job sees them (the artifact store is mounted
    at the same path in the xApp and the job). ``job_id``, ``parent_version`` and ``trigger`` are
    the xApp's bookkeeping (registry, labels); ``spec_document`` is what the job reads."""

    job_id: str
    data_dir: str
    output_dir: str
    preset: str
    teacher: str = ""
    parent_version: str = ""
    deployed_model: str = ""
    """``model.onnx`` the dApps serve now ("" = unknown): the candidate must beat it."""
    gates: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    """Why the job runs (group, detector or "manual", time)."""
    require_validated_teacher: bool = True
    """The job refuses a base teacher without a passing validation verdict."""

    def spec_document(self) -> dict[str, Any]:
        """The spec file's content: only fields ``kdran job run`` accepts."""
        document: dict[str, Any] = {"data_dir": self.data_dir, "teacher": self.teacher,
                                    "preset": self.preset, "output_dir": self.output_dir,
                                    "gates": self.gates,
                                    "require_validated_teacher": self.require_validated_teacher}
        if self.deployed_model:
            document["deployed_model"] = self.deployed_model
        return document

    def write(self, directory: Path) -> Path:
        """Write ``spec.json`` into ``directory``; return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / SPEC_FILE
        path.write_text(json.dumps(self.spec_document(), indent=2, sort_keys=True) + "\n")
        return path


@dataclass(frozen=True)
class JobResult:
    """How a job ended. ``phases`` maps each phase seen to the seconds since launch when it began;
    ``logs`` is the tail of the job's output (kept on failure)."""

    job_id: str
    outcome: str
    reason: str = ""
    artifact_dir: str = ""
    version: str = ""
    gates: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    logs: str = ""

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"


PhaseCallback = Callable[[str], None]
"""Called with each phase name as the job reports it."""


class JobLauncher(Protocol):
    """Runs one job to completion (blocking; the caller runs it in a worker thread)."""

    def run(self, spec: JobSpec, spec_path: Path, labels: dict[str, str],
            on_phase: PhaseCallback) -> JobResult: ...

    def cancel(self, job_id: str) -> None:
        """Stop a running job (no-op when it is not running)."""
        ...


def parse_phase(line: str) -> str | None:
    """The phase named by a ``phase=<name>`` line, else None (other output)."""
    match = _PHASE_LINE.match(line.strip())
    return match.group(1) if match else None


def _gates(value: Any) -> dict[str, Any]:
    """``result.json`` gates (a list of ``{name, ...}``) keyed by name."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(g.get("name", i)): g for i, g in enumerate(value) if isinstance(g, dict)}
    return {}


def _gates_refused(document: dict[str, Any], gates: dict[str, Any]) -> bool:
    """The job ran to its gates and one refused the model (no crash, ``ok`` false)."""
    return (document.get("ok") is False and "traceback" not in document
            and any(isinstance(g, dict) and g.get("passed") is False for g in gates.values()))


def read_result(spec: JobSpec, exit_ok: bool, phases: dict[str, float], logs: str,
                failure: str = "", exit_code: int | None = None) -> JobResult:
    """Interpret a finished job from its ``result.json`` (when written) and exit status.

    ``gates_failed``: exit code ``EXIT_GATES_FAILED``, or a ``result.json`` that is not ``ok``
    with a refused gate and no traceback. A zero exit without an artifact is ``failed``.
    """
    result_path = Path(spec.output_dir) / RESULT_FILE
    document: dict[str, Any] = {}
    if result_path.exists():
        try:
            loaded = json.loads(result_path.read_text())
            document = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError as exc:
            failure = failure or f"result.json is not JSON: {exc}"
    reason = str(document.get("reason", "")) or failure  # the job's own words first
    gates = _gates(document.get("gates"))
    artifact = str(document.get("artifact") or Path(spec.output_dir) / "artifact")
    if exit_code == EXIT_GATES_FAILED or _gates_refused(document, gates):
        return JobResult(spec.job_id, "gates_failed", reason or "gates failed", gates=gates,
                         phases=phases, logs=logs)
    published = (Path(artifact) / "model.onnx").exists() and (Path(artifact) / "card.json").exists()
    if exit_ok and not failure and published:
        version = _card_version(Path(artifact))
        if not version:
            return JobResult(spec.job_id, "failed", f"card.json in {artifact} has no version",
                             gates=gates, phases=phases, logs=logs)
        return JobResult(spec.job_id, "succeeded", artifact_dir=artifact, version=version,
                         gates=gates, phases=phases)
    if exit_ok and not failure:
        reason = reason or f"job exited 0 without an artifact in {artifact}"
    return JobResult(spec.job_id, "failed", reason or "job failed", gates=gates, phases=phases,
                     logs=logs)


def _card_version(artifact: Path) -> str:
    try:
        card = json.loads((artifact / "card.json").read_text())
    except (OSError, json.JSONDecodeError):
        return ""
    return str(card.get("version", "")) if isinstance(card, dict) else ""
