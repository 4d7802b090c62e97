"""Gates: retention arithmetic, verdicts with reasons, budgets in one place."""

from __future__ import annotations

import pytest

from csi.presets import STD, TINY
from distill.budgets import BUDGETS, budget_for
from distill.gates import GateConfig, GateInputs, evaluate_gates, failures, retention

BASELINES = {"outdated": -5.0, "ar": -10.0, "kalman": -10.5}


def _inputs(**changes: float) -> GateInputs:
    values = dict(student_db=-14.9, teacher_db=-15.0, baselines_db=BASELINES, p99_us=500.0,
                  size_bytes=100_000, params=300_000)
    values.update(changes)
    return GateInputs(**values)  # type: ignore[arg-type]


def test_retention_is_the_share_of_the_teachers_gain() -> None:
    assert retention(-5.0, -14.8, -15.0) == pytest.approx(0.98)
    assert retention(-5.0, -15.0, -15.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="does not beat outdated"):
        retention(-5.0, -6.0, -4.0)


def test_a_good_student_passes_every_gate() -> None:
    results = evaluate_gates(_inputs(), GateConfig(), budget_for(STD))
    assert [r.name for r in results] == ["retention", "beats_ar", "latency_p99", "size", "params"]
    assert not failures(results)


@pytest.mark.parametrize(("changes", "gate", "words"), [
    ({"student_db": -12.0}, "retention", "keeps 0.700"),
    ({"student_db": -9.0, "teacher_db": -9.1}, "beats_ar", ">= ar -10.00 dB"),
    ({"p99_us": 5000.0}, "latency_p99", "> budget 1000 us"),
    ({"size_bytes": 5_000_000}, "size", "> budget"),
    ({"params": 600_000}, "params", "600000 parameters > budget 500000"),
])
def test_each_failure_names_its_reason(changes: dict[str, float], gate: str, words: str) -> None:
    failed = failures(evaluate_gates(_inputs(**changes), GateConfig(), budget_for(STD)))
    assert gate in [f.name for f in failed]
    assert words in next(f.reason for f in failed if f.name == gate)


def test_deployed_model_gate_and_overrides() -> None:
    cfg = GateConfig(must_beat=("ar", "kalman"), max_p99_us=100.0)
    results = {r.name: r for r in evaluate_gates(_inputs(deployed_db=-16.0), cfg,
                                                 budget_for(STD))}
    assert not results["deployed"].passed
    assert "deployed model -16.00 dB" in results["deployed"].reason
    assert results["beats_kalman"].passed
    assert not results["latency_p99"].passed and results["latency_p99"].threshold == 100.0


def test_gate_config_from_json_rejects_unknown_keys() -> None:
    assert GateConfig.from_dict({"must_beat": ["outdated"]}).must_beat == ("outdated",)
    with pytest.raises(ValueError, match="unknown gate settings"):
        GateConfig.from_dict({"min_retension": 0.9})


def test_budgets_live_in_one_table() -> None:
    assert budget_for(TINY) is BUDGETS["tiny"]
    assert budget_for(STD).max_params == 500_000


def test_distill_cli_latency_budget_override_reaches_the_gates() -> None:
    from distill.cli import gate_config
    from kdran.cli import build_parser

    common = ["distill", "--preset", "std", "--teacher", "t.pt", "--out", "run"]
    default = gate_config(build_parser().parse_args(common))
    assert default.max_p99_us is None          # the preset budget (distill.budgets) applies
    slow = gate_config(build_parser().parse_args([*common, "--max-p99-us", "2500"]))
    inputs = GateInputs(student_db=-9.0, teacher_db=-9.0,
                        baselines_db={"outdated": -1.0, "ar": -8.0, "kalman": -7.0},
                        p99_us=1500.0, size_bytes=300_000, params=134_000)
    latency = {g.name: g for g in evaluate_gates(inputs, slow, budget_for(STD))}["latency_p99"]
    assert slow.max_p99_us == 2500.0 and latency.passed
    assert not {g.name: g for g in evaluate_gates(inputs, default, budget_for(STD))}[
        "latency_p99"].passed
