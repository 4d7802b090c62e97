"""The demo's configuration files (``demo/fast.json``, ``demo/full.json``).

One file per variant, three sections:

- ``run``: how the demo drives the loop: task preset, DU channel generator (``sionna`` or
  ``synthetic``), number of UEs, SRS occasions per generated channel block, the scenario timeline
  (path relative to the file), the dApp's per-UE history capacity (SRS steps), how often the dApp
  is polled and a status line printed (s), how long to keep running after the promotion (s), the
  time limit of the whole loop (s, preparation excluded) and the job's torch threads;
- ``prepare``: the stationary models (``kdran.demo_prepare.PreparePlan``);
- ``controls``: the xApp's ``controls`` section; the demo fills in what only exists at run time
  (dApp address, artifact store, teacher checkpoint, job command, HTTP port).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from kdran.demo_prepare import PreparePlan

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"
"""The ``demo/`` folder of the source tree (``make demo`` runs from an editable install)."""


class DemoConfigError(ValueError):
    """A demo configuration file that is missing, not JSON or incomplete."""


@dataclass(frozen=True)
class RunSettings:
    """The ``run`` section (module docstring). Times in seconds (wall clock)."""

    preset: str
    channel: str
    ues: int
    block: int
    timeline: Path
    history_capacity: int
    poll_s: float
    status_every_s: float
    settle_s: float
    time_limit_s: float
    job_threads: int = 1


@dataclass(frozen=True)
class DemoConfig:
    """A loaded demo configuration file."""

    path: Path
    description: str
    run: RunSettings
    prepare: PreparePlan
    controls: dict[str, Any]

    def xapp_document(self, dapp_address: str, store: Path, teacher: Path) -> dict[str, Any]:
        """The xApp descriptor for this run: ``controls`` with the run-time values filled in."""
        controls = json.loads(json.dumps(self.controls))  # deep copy
        controls.setdefault("dapps", {})["endpoints"] = [
            {"name": "du-1", "address": dapp_address,
             "e2_node": controls["e2"]["nodes"][0]["meid"]}]
        controls.setdefault("artifact_store", {})["path"] = str(store)
        jobs = controls.setdefault("jobs", {})
        jobs["teacher"] = str(teacher)
        jobs["command"] = [sys.executable, "-m", "kdran.cli", "job", "run",
                           "--threads", str(self.run.job_threads)]
        return {"name": "kdran-demo", "controls": controls}


def _section(document: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = document.get(name)
    if not isinstance(value, dict):
        raise DemoConfigError(f"{path}: '{name}' must be an object")
    return value


def _run_settings(data: dict[str, Any], path: Path) -> RunSettings:
    names = {f.name for f in fields(RunSettings)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise DemoConfigError(f"{path}: unknown run settings {unknown}; known: {sorted(names)}")
    try:
        settings = RunSettings(**{**data, "timeline": path.parent / str(data["timeline"])})
    except (TypeError, KeyError) as exc:
        raise DemoConfigError(f"{path}: run: {exc}") from None
    if settings.channel not in ("sionna", "synthetic"):
        raise DemoConfigError(f"{path}: run.channel must be 'sionna' or 'synthetic', "
                              f"got {settings.channel!r}")
    if min(settings.ues, settings.block, settings.history_capacity) < 1:
        raise DemoConfigError(f"{path}: run.ues, block and history_capacity must be positive")
    if not settings.timeline.is_file():
        raise DemoConfigError(f"{path}: timeline {settings.timeline} does not exist")
    return settings


def load_demo_config(path: Path) -> DemoConfig:
    """Read and check a demo configuration file (``DemoConfigError`` naming the problem)."""
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise DemoConfigError(f"cannot read demo config {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise DemoConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DemoConfigError(f"{path}: the document must be an object")
    run = _run_settings(_section(document, "run", path), path)
    try:
        plan = PreparePlan.from_dict(_section(document, "prepare", path))
    except (TypeError, KeyError, ValueError) as exc:
        raise DemoConfigError(f"{path}: prepare: {exc}") from None
    controls = _section(document, "controls", path)
    if plan.preset != run.preset or plan.channel != run.channel:
        raise DemoConfigError(f"{path}: prepare and run must use the same preset and channel")
    if controls.get("jobs", {}).get("preset", run.preset) != run.preset:
        raise DemoConfigError(f"{path}: controls.jobs.preset must be the run preset "
                              f"{run.preset!r}")
    nodes = controls.get("e2", {}).get("nodes")
    if not isinstance(nodes, list) or not nodes or "meid" not in nodes[0]:
        raise DemoConfigError(f"{path}: controls.e2.nodes must name the E2 node (meid, cells)")
    return DemoConfig(path, str(document.get("description", "")), run, plan, controls)
