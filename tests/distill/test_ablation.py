"""``kdran distill ablate``: the variants' KdConfigs, and the tiny ablation end to end."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import pytest

import distill.pipeline
from csi.presets import TINY
from distill.ablation import (
    LEAVE_ONE_OUT,
    SELECTABLE,
    AblationOptions,
    ablation_variants,
    full_config,
)
from distill.checkpoint import load_student
from distill.losses import KdConfig
from kdran.cli import main

SWITCHES = ("task", *LEAVE_ONE_OUT.values())
REFERENCES = ["outdated", "ar", "kalman", "ar_ad", "teacher"]


def _differing(a: KdConfig, b: KdConfig) -> set[str]:
    return {f.name for f in fields(KdConfig) if getattr(a, f.name) != getattr(b, f.name)}


def test_each_variant_changes_exactly_its_switches_and_keeps_weights() -> None:
    base = KdConfig(temperature=6.0, feature=False, output_weight=0.5)
    plan = {v.key: v for v in ablation_variants(SELECTABLE, base)}
    assert list(plan) == ["scratch", "full", "no_output", "no_feature", "no_relation",
                          "no_beam_kd", "no_adaptive", "output_only"]
    full = plan["full"].kd
    assert full == full_config(base) and all(getattr(full, s) for s in SWITCHES)
    assert full.temperature == 6.0 and full.output_weight == 0.5
    for name, switch in LEAVE_ONE_OUT.items():
        variant = plan[f"no_{name.replace('-', '_')}"]
        assert variant.name == f"full - {name}"
        assert _differing(variant.kd, full) == {switch}
    assert not plan["scratch"].kd.uses_teacher and plan["scratch"].kd.task
    assert _differing(plan["scratch"].kd, KdConfig.scratch()) == {"output_weight", "temperature"}
    assert {s for s in SWITCHES if getattr(plan["output_only"].kd, s)} == {"task", "output"}


def test_scratch_and_full_always_run_and_bad_components_are_named() -> None:
    assert [v.key for v in ablation_variants(())] == ["scratch", "full"]
    with pytest.raises(ValueError, match=r"unknown: \['outptu'\]"):
        AblationOptions(components=("outptu",))
    with pytest.raises(ValueError, match=r"repeated: \['relation'\]"):
        AblationOptions(components=("relation", "relation"))
    with pytest.raises(ValueError, match="low_data"):
        AblationOptions(low_data=0.0)


def test_cli_rejects_a_bad_component_before_loading_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["distill", "ablate", "--preset", "tiny", "--teacher", str(tmp_path / "t.pt"),
               "--out", str(tmp_path / "out"), "--components", "output,scratchy"])
    assert rc == 2 and "'scratchy'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tiny_ablation_end_to_end_trains_the_selected_configs(
        tiny_root: Path, tiny_teacher: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    trained: list[tuple[str, KdConfig, bool]] = []
    real_train = distill.pipeline.train_student

    def spy(*args: Any, **kwargs: Any) -> Any:
        # train_student(student, train, val, preset, kd, cfg, teacher, progress, label)
        trained.append((args[8], args[4], args[6] is not None))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(distill.pipeline, "train_student", spy)
    # the output directory may be the teacher's own (its teacher.pt copy must not clash)
    out, extra_json = tmp_path, tmp_path / "copy.json"
    teacher = Path(shutil.copy(tiny_teacher, out / "teacher.pt"))
    rc = main(["distill", "ablate", "--preset", "tiny", "--teacher", str(teacher),
               "--data-root", str(tiny_root), "--out", str(out), "--epochs", "1",
               "--low-data", "0.5", "--components", "relation", "--json", str(extra_json),
               "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0, printed

    # the configs that actually trained: relation off in exactly one run, no teacher for scratch
    full = full_config(KdConfig())
    assert trained == [("scratch", replace(full, output=False, feature=False, relation=False,
                                           beam=False, adaptive=False), False),
                       ("full", full, True),
                       ("no_relation", replace(full, relation=False), True)]
    assert load_student(out / "no_relation.pt")[1]["meta"]["kd"] == asdict(trained[2][1])

    result = json.loads(extra_json.read_text())
    assert result == json.loads((out / "ablation.json").read_text())
    rows = {r["key"]: r for r in result["rows"]}
    assert list(rows) == ["scratch", "full", "no_relation", *REFERENCES]
    n_train = round(0.5 * TINY.n_train)
    assert result["train_samples"] == n_train and result["schedule"]["epochs"] == 1
    for key, row in rows.items():
        assert math.isfinite(row["nmse_db"]) and row["nmse_db_by_speed"], key
        assert row["vs_full_db"] == pytest.approx(row["nmse_db"] - rows["full"]["nmse_db"])
        assert row["vs_scratch_db"] == pytest.approx(row["nmse_db"] - rows["scratch"]["nmse_db"])
    for key in ("scratch", "full", "no_relation"):
        assert rows[key]["kind"] == "variant" and 0.0 <= rows[key]["beam_top1"] <= 1.0
        assert rows[key]["train_s"] > 0
    assert rows["scratch"]["teacher_passes"] == rows["scratch"]["teacher_passes_saved"] == 0
    for key in ("full", "no_relation"):     # every sample of the epoch: asked or saved
        assert rows[key]["teacher_passes"] > 0
        assert rows[key]["teacher_passes"] + rows[key]["teacher_passes_saved"] == n_train
    assert rows["no_relation"]["kd"]["relation"] is False and rows["full"]["kd"]["relation"]
    assert all(rows[k]["kind"] == "reference" and rows[k]["kd"] is None for k in REFERENCES)

    table = printed[printed.index("variant "):]
    for name in ("scratch", "full", "full - relation", *REFERENCES):
        assert any(line.startswith(name + " ") for line in table.splitlines()), name
    assert "[3/3] full - relation: test NMSE" in printed
    assert "no_relation" not in table and "full - output" not in table
