"""Model preparation for ``kdran demo``: a teacher and an initial student that only know the
*stationary* conditions of the demo timeline, cached under ``runs/demo-<preset>/``.

Run as its own process (``python -m kdran.demo_prepare --plan PLAN.json``) so the demo can show
its progress and stop it with the rest of its process group; it imports torch (through
``distill``) only inside :func:`prepare`.

Steps, each skipped when its output is already there:

1. train / val sets ``[n, history + horizon, antenna, rb]`` complex64 over the teacher's broad
   speed range and a test set at the stationary speeds, from the same channel generator the DU
   emulator streams (``sionna``: ``distill.data`` with a custom ``Recipe``; ``synthetic``:
   ``sim.du.SyntheticChannels``);
2. the teacher (``distill.train.train_teacher``), a foundation model over the broad range
   (e.g. UMa at 10-100 km/h);
3. the initial student (``distill.pipeline.run_distillation``: KD, prune, INT8, gates), distilled
   on the *stationary* sequences only (those of train / val within ``speed_kmh``, e.g.
   10-40 km/h): the site's conditions when it was deployed. Its ``artifact/`` is what the dApp
   serves as the active model when the demo starts.

``plan.json`` records the plan a preparation started from (a different plan starts over, so an
interrupted preparation resumes only with the same plan); ``prepared.json`` marks it complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PREPARED_FILE = "prepared.json"
PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class PreparePlan:
    """What to prepare. Speeds in km/h, SNR in dB; sizes are sequences per split."""

    preset: str
    channel: str
    """``sionna`` or ``synthetic`` (must match the DU's ``--channel``)."""
    scenario: str
    speed_kmh: tuple[float, float]
    """The stationary speeds the initial student is distilled on."""
    teacher_speed_kmh: tuple[float, float]
    """The teacher's (broader) training speeds; must contain ``speed_kmh``."""
    n_train: int
    n_val: int
    n_test: int
    teacher_pretrain_epochs: int
    teacher_predict_epochs: int
    student_epochs: int
    must_beat: tuple[str, ...] = ("ar",)
    """Baselines the initial student must beat (``distill.gates.GateConfig.must_beat``)."""
    max_p99_us: float | None = None
    """Latency gate of the initial student, µs (None: the preset budget)."""
    seed: int = 2026

    def to_dict(self) -> dict[str, Any]:
        """JSON form (tuples as lists), as stored in ``prepared.json``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreparePlan:
        """Inverse of ``to_dict``."""
        fields = dict(data)
        for key in ("speed_kmh", "teacher_speed_kmh"):
            fields[key] = tuple(float(v) for v in fields[key])
        fields["must_beat"] = tuple(str(v) for v in fields.get("must_beat", ("ar",)))
        return cls(**fields)


@dataclass(frozen=True)
class PreparedModels:
    """Where the cached models are: the teacher checkpoint and the initial student's artifact
    directory (``model.onnx``, ``card.json``, ``SHA256SUMS``)."""

    root: Path
    teacher: Path
    student_artifact: Path

    @classmethod
    def under(cls, root: Path) -> PreparedModels:
        return cls(root, root / "teacher.pt", root / "student" / "artifact")


def is_prepared(plan: PreparePlan, root: Path) -> bool:
    """True when ``root`` holds models prepared from exactly ``plan``."""
    models = PreparedModels.under(root)
    marker = root / PREPARED_FILE
    if not (marker.is_file() and models.teacher.is_file()
            and (models.student_artifact / "model.onnx").is_file()):
        return False
    try:
        return bool(json.loads(marker.read_text()).get("plan") == plan.to_dict())
    except (OSError, json.JSONDecodeError):
        return False


def _say(message: str) -> None:
    print(f"prepare: {message}", flush=True)


def _make_set(plan: PreparePlan, split: str, speed_kmh: tuple[float, float], n: int,
              seed: int) -> Any:
    """``n`` sequences of ``plan.scenario`` at ``speed_kmh`` as a ``csi.dataset.ChannelSet``."""
    import numpy as np

    from csi.dataset import ChannelSet
    from csi.presets import get_preset

    preset = get_preset(plan.preset)
    snr = preset.train_snr_db if split != "test" else (preset.test_snr_db, preset.test_snr_db)
    if plan.channel == "sionna":
        from distill.data import Recipe, generate_from_recipe

        recipe = Recipe(split=f"demo-{split}", scenarios=(plan.scenario,),
                        speed_kmh=speed_kmh, snr_db=snr, carrier_hz=preset.carrier_hz,
                        steps=preset.seq_len)
        return generate_from_recipe(preset, recipe, n, seed)
    from sim.du import SyntheticChannels
    from sim.timeline import UeSetting

    rng = np.random.default_rng(seed)
    speeds = rng.uniform(*speed_kmh, n)
    settings = [UeSetting(plan.scenario, float(v), None) for v in speeds]
    h = SyntheticChannels(preset).block(settings, preset.seq_len, seed)
    return ChannelSet(h, np.full(n, plan.scenario), speeds.astype(np.float32),
                      np.full(n, preset.carrier_hz), rng.uniform(*snr, n).astype(np.float32),
                      noise_seed=seed + 1,
                      meta={"preset": preset.name, "split": f"demo-{split}",
                            "generator": "synthetic", "speed_kmh": list(speed_kmh)})


def _datasets(plan: PreparePlan, root: Path) -> dict[str, Any]:
    """train / val (teacher speeds) and test (stationary speeds), generated once and kept under
    ``root/data/<split>``."""
    from csi.dataset import ChannelSet

    sizes = {"train": (plan.n_train, plan.teacher_speed_kmh),
             "val": (plan.n_val, plan.teacher_speed_kmh),
             "test": (plan.n_test, plan.speed_kmh)}
    sets = {}
    for index, (split, (n, speeds)) in enumerate(sizes.items()):
        directory = root / "data" / split
        if (directory / "meta.json").is_file():
            sets[split] = ChannelSet.load(directory)
            continue
        began = time.perf_counter()
        _say(f"generating {n} {plan.scenario} {speeds[0]:g}-{speeds[1]:g} km/h sequences "
             f"({plan.channel}, {split})")
        sets[split] = _make_set(plan, split, speeds, n, plan.seed + index)
        sets[split].save(directory)
        _say(f"{split}: {n} sequences in {time.perf_counter() - began:.0f} s")
    return sets


def stationary(channels: Any, speed_kmh: tuple[float, float]) -> Any:
    """The sequences of ``channels`` whose UE speed (km/h) lies in ``speed_kmh``."""
    import numpy as np

    lo, hi = speed_kmh
    keep = np.flatnonzero((channels.speed_kmh >= lo) & (channels.speed_kmh <= hi))
    if keep.size < 2:
        raise ValueError(f"only {keep.size} sequences between {lo:g} and {hi:g} km/h")
    return channels.subset(keep)


def prepare(plan: PreparePlan, root: Path) -> PreparedModels:
    """Build (or reuse) the data, the teacher and the initial student of ``plan`` in ``root``."""
    from csi.presets import get_preset
    from distill.gates import GateConfig
    from distill.kd import student_schedule
    from distill.pipeline import DistillOptions, Sets, run_distillation
    from distill.train import default_schedule, train_teacher

    models = PreparedModels.under(root)
    if is_prepared(plan, root):
        return models
    marker, started = root / PREPARED_FILE, root / PLAN_FILE
    document = json.dumps({"plan": plan.to_dict()}, indent=2) + "\n"
    if root.exists() and (not started.is_file() or started.read_text() != document):
        _say(f"{root} holds models of another plan: starting over")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    started.write_text(document)
    preset = get_preset(plan.preset)
    sets = _datasets(plan, root)
    if not models.teacher.is_file():
        _say(f"training the teacher on {plan.teacher_speed_kmh[0]:g}-{plan.teacher_speed_kmh[1]:g} "
             f"km/h ({plan.teacher_pretrain_epochs} MAE + "
             f"{plan.teacher_predict_epochs} prediction epochs)")
        schedule = default_schedule(preset, pretrain_epochs=plan.teacher_pretrain_epochs,
                                    predict_epochs=plan.teacher_predict_epochs, seed=plan.seed)
        report = train_teacher(preset, sets["train"], sets["val"], models.teacher, schedule)
        _say(report.line())
    _say(f"distilling the initial student ({plan.student_epochs} epochs, prune, INT8, gates)")
    options = DistillOptions(schedule=student_schedule(preset, epochs=plan.student_epochs,
                                                       seed=plan.seed),
                             gates=GateConfig(must_beat=plan.must_beat, max_p99_us=plan.max_p99_us),
                             train_scratch=False,
                             progress=True)
    train, val = (stationary(sets[k], plan.speed_kmh) for k in ("train", "val"))
    _say(f"initial student data: {len(train)} train / {len(val)} val sequences at "
         f"{plan.speed_kmh[0]:g}-{plan.speed_kmh[1]:g} km/h")
    result = run_distillation(preset, models.teacher, Sets(train, val, sets["test"]),
                              root / "student", options,
                              on_phase=lambda name: _say(f"phase {name}"))
    if not result.ok:
        raise RuntimeError(f"the initial student was not published: {result.reason}")
    nmse = {name: round(float(s["nmse_db"]), 2) for name, s in result.scores.items()}
    _say(f"initial student published: test NMSE (dB, stationary) {nmse}")
    marker.write_text(json.dumps({"plan": plan.to_dict(), "scores_db": nmse,
                                  "wall_s": round(result.wall_s, 1)}, indent=2) + "\n")
    return models


def main(argv: list[str] | None = None) -> int:
    """``python -m kdran.demo_prepare --plan PLAN.json --root DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m kdran.demo_prepare",
        description="Prepare the demo's teacher and initial student (cached in ROOT).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--plan", type=Path, required=True, help="PreparePlan as JSON")
    parser.add_argument("--root", type=Path, required=True, help="cache directory")
    args = parser.parse_args(argv)
    try:
        plan = PreparePlan.from_dict(json.loads(args.plan.read_text()))
        prepare(plan, args.root)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        print(f"prepare: error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
