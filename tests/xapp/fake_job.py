"""Test double of ``kdran job run --spec spec.json`` (the real job, distill/job.py, needs torch
and minutes): it reads the same spec (only the job's own fields) and writes the same outputs.

Contract kept: ``phase=<name>`` lines on stdout; ``result.json`` in ``output_dir`` with ``ok``,
``reason``, ``artifact`` and ``gates`` (a list of ``{name, passed, value, threshold, reason}``);
when published, ``artifact/`` with ``model.onnx``, ``card.json`` (``version``, ``data_hash``)
and ``SHA256SUMS``; exit 0 published, 3 gates refused, 2 error. ``model.onnx`` is a placeholder
byte string (the fake dApp in the tests does not load it). Behaviour from ``$FAKE_JOB_MODE``:
``ok`` (default), ``fail`` (error after distilling), ``gates`` (a gate refuses), ``hang``, or
``hang_tree`` (forks a child that ignores SIGTERM, writes its pid to ``child.pid`` in the output
directory, then hangs). A comma-separated list is a sequence over runs: run *n* (counted in the
file ``$FAKE_JOB_COUNTER``) uses item *n*, the last item repeating.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from csi.dataset import ChannelSet
from distill.job import OPTIONAL_FIELDS, REQUIRED_FIELDS

KNOWN = set(REQUIRED_FIELDS + OPTIONAL_FIELDS)  # the real job's spec fields


def result(out: Path, **fields: object) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(fields))


def pick_mode() -> str:
    """This run's mode from ``$FAKE_JOB_MODE`` (and ``$FAKE_JOB_COUNTER`` for a sequence)."""
    modes = os.environ.get("FAKE_JOB_MODE", "ok").split(",")
    counter = os.environ.get("FAKE_JOB_COUNTER")
    if not counter:
        return modes[0]
    path = Path(counter)
    run = int(path.read_text()) if path.exists() else 0
    path.write_text(str(run + 1))
    return modes[min(run, len(modes) - 1)]


def hang_with_child(out: Path) -> None:
    """Fork a SIGTERM-ignoring child in this process group, record its pid, and hang."""
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                              "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "child.pid").write_text(str(child.pid))
    print(f"child={child.pid}", flush=True)
    time.sleep(3600)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    spec = json.loads(Path(parser.parse_args().spec).read_text())
    out = Path(spec["output_dir"])
    if set(spec) - KNOWN:
        print(f"phase=failed unknown spec fields {sorted(set(spec) - KNOWN)}")
        return 2
    mode = pick_mode()
    data = ChannelSet.load(Path(spec["data_dir"]))
    for phase in ("adapting", "distilling"):
        print(f"phase={phase}", flush=True)
    if mode == "hang":
        time.sleep(3600)
    if mode == "hang_tree":
        hang_with_child(out)
    if mode == "fail":
        reason = "FloatingPointError: distillation diverged (loss is NaN)"
        result(out, ok=False, reason=reason, artifact=None, gates=[], traceback="...")
        print(f"phase=failed {reason}", flush=True)
        return 2
    for phase in ("pruning", "exporting", "quantizing", "gates"):
        print(f"phase={phase}", flush=True)
    passed = mode != "gates"
    gates = [{"name": "retention", "passed": passed, "value": 0.99 if passed else 0.7,
              "threshold": 0.98, "reason": "" if passed else "student keeps 70 % of the gain"}]
    if not passed:
        result(out, ok=False, reason="gate retention: student keeps 70 % of the gain",
               artifact=None, gates=gates)
        print("phase=failed gates", flush=True)
        return 3
    artifact = out / "artifact"
    artifact.mkdir(parents=True)
    version = f"kd-{data.content_hash()[:10]}"
    model = f"placeholder onnx for {version}".encode()
    (artifact / "model.onnx").write_bytes(model)
    card = {"version": version, "preset": spec["preset"], "data_hash": data.content_hash(),
            "n_train": len(data), "deployed_model": spec.get("deployed_model", "")}
    (artifact / "card.json").write_text(json.dumps(card))
    (artifact / "SHA256SUMS").write_text(f"{hashlib.sha256(model).hexdigest()}  model.onnx\n")
    result(out, ok=True, reason="", artifact=str(artifact), gates=gates)
    print("phase=published", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
