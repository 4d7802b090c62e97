"""Faults of the re-distillation loop with real components on localhost: the controller, the
LocalJobLauncher running the test-double job as a real subprocess, the real rollout code, the
registry on SDL (a private redis-server for the Redis restart).

- a job fails → retried after an exponential backoff, at most ``max_retries`` times; each
  attempt is a job record, a ``kdran_xapp_jobs_total{outcome}`` count and a ``job_finished``
  log line; nothing is promoted from a failed attempt;
- a job hangs past its deadline → its whole process group is killed, reported, retried;
- a job's model fails the gates → not promoted, reported, not retried;
- too little CSI (UE histories just restarted) → the export waits, then either runs the job or
  ends as ``no_data`` without a backoff;
- a freshly deployed shadow missing from GetStatus → counted as 0 scored until a timeout;
- Redis stopped and restarted while indications keep arriving → every indication decoded, no
  job or model record lost.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from xapp_fakes import FakeDapp

from xapp.config import (
    ArtifactStoreConfig,
    Controls,
    DappEndpoint,
    DappsConfig,
    JobsConfig,
    PolicyConfig,
    RolloutConfig,
)
from xapp.controller import Controller, Subscribed
from xapp.e2 import measurements as m
from xapp.flood import indication_pool
from xapp.launch_local import LocalJobLauncher
from xapp.logs import DECISION_LOGGER
from xapp.registry import Registry, open_sdl

GROUP = "gnb-1"
CELL = "00101-000000001"


@pytest.fixture(autouse=True)
def _no_dbaas_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``open_sdl(url)`` sets the DBAAS variables; keep them from leaking into other tests."""
    for name in ("DBAAS_SERVICE_HOST", "DBAAS_SERVICE_PORT"):
        monkeypatch.setenv(name, "")  # recorded, so teardown restores the original (absent)
        monkeypatch.delenv(name)


def fault_controls(tmp_path: Path, job_command: list[str], max_retries: int = 2,
                   csi_wait_s: float = 0.0, **rollout: float) -> Controls:
    return Controls(
        policy=PolicyConfig(cooldown_s=3600, backoff_initial_s=0.2, backoff_factor=2.0,
                            max_retries=max_retries),
        jobs=JobsConfig(launcher="local", preset="tiny", command=job_command,
                        teacher=str(tmp_path / "teacher.pt"), recent_csi_wait_s=csi_wait_s,
                        recent_csi_poll_s=0.05),
        artifact_store=ArtifactStoreConfig(path=str(tmp_path / "store")),
        rollout=replace(RolloutConfig(min_scored_predictions=1000, poll_interval_s=0.01,
                                      rollback_watch_s=0.0), **rollout),
        dapps=DappsConfig(endpoints=[DappEndpoint("du-1", "fake:1", GROUP)]))


def build(tmp_path: Path, job_command: list[str], modes: str, dapp: FakeDapp | None = None,
          deadline_s: float = 60.0, registry: Registry | None = None,
          **config: Any) -> tuple[Controller, FakeDapp]:
    """A controller whose job runs ``modes`` (fake_job.py's sequence over attempts)."""
    fake = dapp or FakeDapp("du-1")
    env = {"FAKE_JOB_MODE": modes, "FAKE_JOB_COUNTER": str(tmp_path / "runs")}
    launcher = LocalJobLauncher(job_command, deadline_s, env=env, kill_grace_s=0.5)
    controller = Controller(fault_controls(tmp_path, job_command, **config),
                            registry or Registry.open(open_sdl(), "faults"), launcher,
                            lambda endpoint: fake)  # type: ignore[arg-type,return-value]
    return controller, fake


@pytest.fixture
def decisions(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The decision log lines as dicts (``event`` plus fields), in order."""
    caplog.set_level(logging.INFO, logger=DECISION_LOGGER)
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(dict(record.fields))  # type: ignore[attr-defined]

    handler = Collect()
    logging.getLogger(DECISION_LOGGER).addHandler(handler)
    yield lines
    logging.getLogger(DECISION_LOGGER).removeHandler(handler)


def jobs_total(controller: Controller, outcome: str) -> float:
    return controller.metrics.registry.get_sample_value("kdran_xapp_jobs_total",
                                                        {"outcome": outcome}) or 0.0


def events(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == name]


def test_failed_job_is_retried_with_exponential_backoff_then_gives_up(
        tmp_path: Path, job_command: list[str], decisions: list[dict[str, Any]]) -> None:
    controller, fake = build(tmp_path, job_command, "fail")
    assert controller.trigger(GROUP, GROUP, reason="page_hinkley") is not None
    assert controller.wait_idle(30, retries=True)
    jobs = controller.registry.jobs()
    assert [(j.attempt, j.outcome) for j in jobs] == [(1, "failed"), (2, "failed"),
                                                      (3, "failed")]
    assert [j.retry_of for j in jobs] == ["", jobs[0].job_id, jobs[1].job_id]
    assert all("distillation diverged" in j.reason for j in jobs)
    delays = [line["in_s"] for line in events(decisions, "job_retry_scheduled")]
    assert delays == pytest.approx([0.2, 0.4], abs=0.05)  # 0.2 s * 2 ** (failures - 1)
    for earlier, later in itertools.pairwise(jobs):
        assert later.created_at - earlier.phases["exporting_csi"] >= 0.2
    assert events(decisions, "job_retries_exhausted")[0]["attempts"] == 3
    finished = events(decisions, "job_finished")
    assert [(f["outcome"], f["attempt"]) for f in finished] == [("failed", 1), ("failed", 2),
                                                                 ("failed", 3)]
    assert jobs_total(controller, "failed") == 3
    assert controller.registry.models() == [] and fake.calls == []  # never promoted
    assert controller.policy.decide(GROUP, time.time()).reason == "backoff"
    assert controller.registry.group_states()[GROUP].failures == 3


def test_failure_then_success_promotes_only_the_retry(tmp_path: Path,
                                                      job_command: list[str]) -> None:
    controller, fake = build(tmp_path, job_command, "fail,ok")
    controller.trigger(GROUP, GROUP, reason="adwin")
    assert controller.wait_idle(30, retries=True)
    first, second = controller.registry.jobs()
    assert (first.outcome, second.outcome, second.rollout) == ("failed", "succeeded", "promoted")
    assert second.trigger == "retry" and second.retry_of == first.job_id
    (model,) = controller.registry.models()
    assert model.job_id == second.job_id and fake.active == model.version
    assert jobs_total(controller, "failed") == 1 and jobs_total(controller, "succeeded") == 1
    state = controller.registry.group_states()[GROUP]
    assert state.failures == 0 and state.cooldown_until > time.time()


def test_hung_job_is_killed_at_its_deadline_and_retried(
        tmp_path: Path, job_command: list[str], decisions: list[dict[str, Any]]) -> None:
    controller, fake = build(tmp_path, job_command, "hang_tree,ok", deadline_s=1.0)
    controller.trigger(GROUP, GROUP, reason="page_hinkley")
    assert controller.wait_idle(40, retries=True)
    hung, retry = controller.registry.jobs()
    assert (hung.outcome, hung.reason) == ("failed", "deadline of 1 s exceeded")
    child = int((Path(json.loads(Path(hung.spec_path).read_text())["output_dir"])
                 / "child.pid").read_text())
    with pytest.raises(ProcessLookupError):  # the job's SIGTERM-ignoring child is gone too
        for _ in range(100):
            os.kill(child, 0)
            time.sleep(0.05)
            if Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                raise ProcessLookupError  # killed; only init's reaping is pending
    assert "child=" in events(decisions, "job_finished")[0]["logs_tail"]
    assert (retry.attempt, retry.outcome, retry.rollout) == (2, "succeeded", "promoted")
    assert jobs_total(controller, "failed") == 1 and fake.active == retry.version


def test_model_failing_gates_is_reported_not_promoted_not_retried(
        tmp_path: Path, job_command: list[str], decisions: list[dict[str, Any]]) -> None:
    controller, fake = build(tmp_path, job_command, "gates")
    controller.trigger(GROUP, GROUP, reason="baseline_guard")
    assert controller.wait_idle(30, retries=True)
    (job,) = controller.registry.jobs()
    assert job.outcome == "gates_failed" and "retention" in job.reason
    assert jobs_total(controller, "gates_failed") == 1
    assert events(decisions, "job_finished")[0]["outcome"] == "gates_failed"
    assert events(decisions, "job_retry_scheduled") == []
    assert controller.registry.models() == [] and fake.calls == []
    assert controller.policy.decide(GROUP, time.time()).reason == "backoff"


def test_short_csi_histories_are_waited_for(tmp_path: Path, job_command: list[str],
                                            decisions: list[dict[str, Any]]) -> None:
    controller, fake = build(tmp_path, job_command, "ok", dapp=FakeDapp("du-1", short_exports=3),
                             csi_wait_s=10.0)
    controller.trigger(GROUP, GROUP, reason="manual", manual=True)
    assert controller.wait_idle(30)
    (job,) = controller.registry.jobs()
    assert (job.outcome, job.rollout) == ("succeeded", "promoted")
    assert fake.exports == 4
    assert [w["attempt"] for w in events(decisions, "csi_export_waiting")] == [1, 2, 3]


def test_no_csi_yet_is_no_data_not_a_failure(tmp_path: Path, job_command: list[str],
                                             decisions: list[dict[str, Any]]) -> None:
    controller, fake = build(tmp_path, job_command, "ok",
                             dapp=FakeDapp("du-1", short_exports=1000), csi_wait_s=0.3)
    controller.trigger(GROUP, GROUP, reason="page_hinkley")
    assert controller.wait_idle(30, retries=True)
    (job,) = controller.registry.jobs()
    assert job.outcome == "no_data" and "need 1" in job.reason and "0.3 s" in job.reason
    (line,) = events(decisions, "job_no_data")
    assert line["group"] == GROUP and "need 1" in line["reason"]
    assert not (tmp_path / "runs").exists()  # the job never started
    assert jobs_total(controller, "no_data") == 1 and jobs_total(controller, "failed") == 0
    state = controller.registry.group_states()[GROUP]
    assert (state.failures, state.backoff_until, state.job_id) == (0, 0.0, "")
    fake.short_exports = 0  # data arrived: the next drift runs at once, no 300 s backoff
    assert controller.trigger(GROUP, GROUP, reason="page_hinkley") is not None
    assert controller.wait_idle(30)
    assert controller.registry.jobs()[-1].rollout == "promoted"


@pytest.mark.parametrize(("unlisted_polls", "rollout"), [(3, "promoted"), (10_000, "failed")])
def test_shadow_missing_from_status_right_after_deploy(
        tmp_path: Path, job_command: list[str], unlisted_polls: int, rollout: str) -> None:
    fake = FakeDapp("du-1", unlisted_polls=unlisted_polls)
    controller, _ = build(tmp_path, job_command, "ok", dapp=fake, shadow_listing_timeout_s=0.5)
    controller.trigger(GROUP, GROUP, reason="manual", manual=True)
    assert controller.wait_idle(30)
    (job,) = controller.registry.jobs()
    assert (job.outcome, job.rollout) == ("succeeded", rollout)
    assert controller.metrics.registry.get_sample_value("kdran_xapp_rollouts_total",
                                                        {"outcome": rollout}) == 1
    assert (fake.active == job.version) == (rollout == "promoted")


@pytest.mark.redis
def test_redis_restart_mid_run_through_the_controller(private_redis, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                      job_command: list[str]) -> None:
    registry = Registry.open(open_sdl(private_redis.url), "faults-e2e")
    controller, fake = build(tmp_path, job_command, "ok", registry=registry)
    controller.subscriptions.add(7, Subscribed(GROUP, CELL, tuple(m.KDRAN_MEASUREMENTS)))
    pool = indication_pool(16)
    decoded = controller.metrics.kpm_reports.labels(outcome="decoded")

    def feed(n: int) -> None:
        for i in range(n):
            controller.on_indication(pool[i % len(pool)], 7)

    feed(20)
    private_redis.stop()
    feed(20)  # KPMs keep arriving and are processed while Redis is down
    job_id = controller.trigger(GROUP, GROUP, reason="manual", manual=True)
    feed(20)
    assert controller.wait_idle(30) and registry.pending > 0 and not registry.healthy()
    private_redis.start()
    feed(20)
    assert registry.healthy() and registry.pending == 0
    assert decoded._value.get() == 80  # type: ignore[attr-defined]
    reopened = Registry.open(open_sdl(private_redis.url), "faults-e2e")  # a restarted xApp
    (job,) = reopened.jobs()
    assert job.job_id == job_id and (job.outcome, job.rollout) == ("succeeded", "promoted")
    assert list(job.phases)[:3] == ["pending", "exporting_csi", "adapting"]
    (model,) = reopened.models()
    assert model.version == job.version and model.states == {"du-1": "active"}
    assert reopened.dapp_roles("du-1")["active"] == fake.active == job.version
    assert reopened.group_states()[GROUP].cooldown_until > time.time()
