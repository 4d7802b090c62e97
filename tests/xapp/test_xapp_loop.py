"""The closed loop in one process: an emulated E2 node (sim.e2node) sends real E2AP KPM
indications over the in-process transport; a shift of the predictor's NMSE → drift → a job
(LocalJobLauncher running the test-double job script) → registry entry → shadow → promote on the
canary, then the second dApp. And the failure paths: job fails, gates fail, candidate worse,
promoted model degrades."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from xapp_fakes import FakeDapp

from sim.e2node import CellSnapshot
from sim.e2node import E2Node as SimE2Node
from sim.transport import in_process_pair
from xapp.config import (
    ArtifactStoreConfig,
    Controls,
    DappEndpoint,
    DappsConfig,
    E2Config,
    E2Node,
    JobsConfig,
    KpmConfig,
    PolicyConfig,
    RolloutConfig,
)
from xapp.controller import Controller
from xapp.e2 import NrCgi
from xapp.e2 import measurements as m
from xapp.launch_local import LocalJobLauncher
from xapp.local import LocalE2Loop
from xapp.registry import Registry, open_sdl
from xapp.subscription import plan

CELL = "00101-000000001"


def controls(tmp_path: Path, job_command: list[str], **rollout: float) -> Controls:
    return Controls(
        e2=E2Config(nodes=[E2Node("gnb-1", [CELL])],
                    kpm=KpmConfig(reporting_period_ms=100, granularity_period_ms=100)),
        policy=PolicyConfig(cooldown_s=3600),
        jobs=JobsConfig(launcher="local", preset="tiny", command=job_command,
                        teacher=str(tmp_path / "teacher.pt"),
                        active_deadline_seconds=60),
        artifact_store=ArtifactStoreConfig(path=str(tmp_path / "store")),
        rollout=replace(RolloutConfig(min_scored_predictions=1000, poll_interval_s=0.0,
                                      rollback_watch_s=0.0), **rollout),
        dapps=DappsConfig(endpoints=[DappEndpoint("du-1", "fake:1", "gnb-1"),
                                     DappEndpoint("du-2", "fake:2", "gnb-1")]))


def build(tmp_path: Path, job_command: list[str], mode: str = "ok", dapps: Sequence[FakeDapp] = (),
          **rollout: float) -> tuple[Controller, dict[str, FakeDapp]]:
    config = controls(tmp_path, job_command, **rollout)
    fakes = {d.name: d for d in dapps} or {"du-1": FakeDapp("du-1"), "du-2": FakeDapp("du-2")}
    launcher = LocalJobLauncher(job_command, 60, env={"FAKE_JOB_MODE": mode})
    controller = Controller(config, Registry.open(open_sdl(), "loop"), launcher,
                            lambda endpoint: fakes[endpoint.name],  # type: ignore[arg-type,return-value]
                            rollout_sleep=lambda s: time.sleep(min(s, 0.01)))
    return controller, fakes


def kpm_source(nmse_at: Callable[[int], float]) -> Callable[[datetime], list[CellSnapshot]]:
    """Cell values per report: NMSE from ``nmse_at(report index)``, healthy link counters."""
    counter = {"n": 0}

    def source(now: datetime) -> list[CellSnapshot]:
        n = counter["n"] = counter["n"] + 1
        values = {m.CHPRED_NMSE_DB_MEAN: nmse_at(n), m.CHPRED_NMSE_DB_P90: nmse_at(n) + 3,
                  m.CHPRED_COUNT: 1000, m.CHPRED_FALLBACK: 0, m.DRB_UE_THP_DL: 50_000,
                  m.TB_TOT_NBR_DL: 10_000, m.TB_ERR_TOTAL_NBR_DL: 100, m.RRU_PRB_USED_DL: 40}
        return [CellSnapshot(NrCgi.parse(CELL), values)]
    return source


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_shift_drift_job_registry_shadow_promote(tmp_path: Path, job_command: list[str]) -> None:
    controller, fakes = build(tmp_path, job_command)
    shift_at = 60
    noise = [0.3, -0.2, 0.5, -0.4, 0.1, -0.6, 0.2, 0.4, -0.1, -0.3]

    def nmse_at(n: int) -> float:  # the shift degrades v0; the promoted model recovers
        level = -12.0 if n < shift_at or fakes["du-1"].active != "v0" else -5.0
        return level + noise[n % len(noise)]

    source = kpm_source(nmse_at)
    ric, node_side = in_process_pair()
    node = SimE2Node(node_side, [NrCgi.parse(CELL)], source)
    loop = LocalE2Loop(controller, ric, node.ran_function_id, plan(controller.controls)).start()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    node.tick(now)  # answers the subscription
    wait_for(lambda: len(controller.subscriptions) == 1)
    decoded = controller.metrics.kpm_reports.labels(outcome="decoded")
    detected_at = None
    for n in range(1, 120):
        node.tick(now + timedelta(milliseconds=100 * n))
        wait_for(lambda n=n: decoded._value.get() >= n)  # type: ignore[misc]
        if detected_at is None and controller.registry.jobs():
            detected_at = n
    loop.stop()
    assert detected_at is not None and shift_at <= detected_at <= shift_at + 4
    assert controller.wait_idle(30)
    (job,) = controller.registry.jobs()
    assert (job.outcome, job.rollout) == ("succeeded", "promoted"), job.reason
    assert list(job.phases)[:3] == ["pending", "exporting_csi", "adapting"]
    assert "published" in job.phases and "rollout" in job.phases
    model = controller.registry.model(job.version)
    assert model is not None and model.parent == "v0"
    assert model.states == {"du-1": "active", "du-2": "active"}
    assert model.card["n_train"] == 24  # 2 dApps x 4 UEs x 3 windows of 10 steps (tiny)
    assert fakes["du-1"].calls == [f"deploy:{job.version}:shadow", f"promote:{job.version}"]
    assert fakes["du-2"].active == job.version
    metrics = controller.metrics.registry
    assert metrics.get_sample_value("kdran_xapp_rollouts_total", {"outcome": "promoted"}) == 1
    assert metrics.get_sample_value("kdran_xapp_drift_events_total",
                                    {"cell": CELL, "detector": "page_hinkley"}) == 1
    assert metrics.get_sample_value("kdran_xapp_drift_state", {"cell": CELL}) == 0  # reset
    assert metrics.get_sample_value("kdran_xapp_model_version_info",
                                    {"dapp": "du-2", "version": job.version, "role": "active"}) == 1
    assert controller.policy.decide("gnb-1", time.time()).reason == "cooldown"


def run_manual(controller: Controller) -> None:
    assert controller.trigger("gnb-1", "gnb-1", reason="manual", manual=True) is not None
    assert controller.wait_idle(30)


@pytest.mark.parametrize(("mode", "outcome", "reason"), [
    ("fail", "failed", "FloatingPointError: distillation diverged (loss is NaN)"),
    ("gates", "gates_failed", "gate retention: student keeps 70 % of the gain"),
])
def test_failed_job_backs_off_and_publishes_nothing(tmp_path: Path, job_command: list[str],
                                                    mode: str, outcome: str, reason: str) -> None:
    controller, fakes = build(tmp_path, job_command, mode=mode)
    run_manual(controller)
    (job,) = controller.registry.jobs()
    assert (job.outcome, job.reason) == (outcome, reason)
    assert controller.registry.models() == [] and fakes["du-1"].calls == []
    assert controller.policy.decide("gnb-1", time.time()).reason == "backoff"
    assert controller.metrics.registry.get_sample_value(
        "kdran_xapp_jobs_total", {"outcome": outcome}) == 1


def test_worse_candidate_is_discarded_on_the_canary(tmp_path: Path,
                                                    job_command: list[str]) -> None:
    dapps = [FakeDapp("du-1", candidate_nmse_db=-6.1), FakeDapp("du-2")]
    controller, fakes = build(tmp_path, job_command, dapps=dapps)
    run_manual(controller)
    (job,) = controller.registry.jobs()
    assert (job.outcome, job.rollout) == ("succeeded", "discarded")
    assert fakes["du-1"].calls[-1] == "discard" and fakes["du-1"].active == "v0"
    assert fakes["du-2"].calls == []  # the canary stopped the rollout
    assert controller.registry.model(job.version).states == {"du-1": "discarded"}  # type: ignore[union-attr]


def test_degrading_promoted_model_is_rolled_back(tmp_path: Path, job_command: list[str]) -> None:
    dapps = [FakeDapp("du-1", after_promotion_nmse_db=-3.0), FakeDapp("du-2")]
    controller, fakes = build(tmp_path, job_command, dapps=dapps, rollback_watch_s=0.2)
    run_manual(controller)
    (job,) = controller.registry.jobs()
    assert job.rollout == "rolled_back"
    assert fakes["du-1"].calls[-1] == "rollback" and fakes["du-1"].active == "v0"
    assert controller.registry.model(job.version).states == {"du-1": "retired"}  # type: ignore[union-attr]
    assert controller.metrics.registry.get_sample_value(
        "kdran_xapp_rollouts_total", {"outcome": "rolled_back"}) == 1
