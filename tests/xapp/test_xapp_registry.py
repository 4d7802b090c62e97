"""The registry on real Redis through ricsdl (marked ``redis``: fails when Redis is down), on
the fake backend, across an xApp restart and across a Redis restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from xapp.policy import GroupState
from xapp.registry import JobRecord, ModelRecord, Registry, open_sdl


@pytest.fixture(autouse=True)
def _no_dbaas_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``open_sdl`` sets the DBAAS variables; keep them from leaking into other tests."""
    for name in ("DBAAS_SERVICE_HOST", "DBAAS_SERVICE_PORT"):
        monkeypatch.setenv(name, "")  # recorded, so teardown restores the original (absent)
        monkeypatch.delenv(name)


def fill(registry: Registry) -> None:
    registry.put_model(ModelRecord("kd-1", "ab" * 32, "/store/kd-1", parent="v0",
                                   teacher="wifo-base", job_id="j1", created_at=1.0,
                                   card={"preset": "tiny"}, gates={"latency": {"passed": True}}))
    registry.set_model_state("kd-1", "du-1", "shadow")
    registry.put_job(JobRecord("j1", "gnb-1", "page_hinkley", 1.0))
    registry.update_job("j1", phase="distilling")
    registry.put_group_state("gnb-1", GroupState(cooldown_until=50.0, failures=1))
    registry.put_dapp_roles("du-1", {"active": "v0", "shadow": "kd-1", "previous": ""})


def check(registry: Registry) -> None:
    model = registry.model("kd-1")
    assert model is not None and model.parent == "v0" and model.teacher == "wifo-base"
    assert model.states == {"du-1": "shadow"} and model.card == {"preset": "tiny"}
    job = registry.job("j1")
    assert job is not None and job.phase == "distilling" and "distilling" in job.phases
    assert registry.group_states()["gnb-1"] == GroupState(cooldown_until=50.0, failures=1)
    assert registry.dapp_roles("du-1")["shadow"] == "kd-1"


@pytest.mark.redis
def test_real_redis_roundtrip_and_restarted_xapp_resumes(redis_url: str, namespace: str) -> None:
    first = Registry.open(open_sdl(redis_url), namespace)
    fill(first)
    assert first.pending == 0
    raw = redis.Redis.from_url(redis_url).keys(f"{{{namespace}}},*")
    assert len(raw) == 4  # model, job, group, dapp — ricsdl's "{ns},key" layout
    check(Registry.open(open_sdl(redis_url), namespace))  # a new process' view


def test_fake_backend_is_the_embedded_default() -> None:
    assert not os.environ.get("DBAAS_SERVICE_HOST")
    registry = Registry.open(open_sdl(), "embedded")
    fill(registry)
    check(registry)
    with pytest.raises(ValueError, match="model state"):
        registry.set_model_state("kd-1", "du-1", "weird")
    with pytest.raises(ValueError, match="redis URL"):
        open_sdl("http://localhost:6379")


@pytest.mark.redis
def test_redis_restart_mid_run_loses_nothing(private_redis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry = Registry.open(open_sdl(private_redis.url), "restart")
    registry.put_job(JobRecord("j1", "gnb-1", "adwin", 1.0))
    private_redis.stop()
    # Writes while Redis is down are kept in memory and queued, reads still answer.
    registry.update_job("j1", phase="adapting")
    registry.put_group_state("gnb-1", GroupState(job_id="j1"))
    assert registry.pending >= 1 and not registry.healthy()
    assert registry.job("j1").phase == "adapting"  # type: ignore[union-attr]
    private_redis.start()
    assert registry.healthy() and registry.pending == 0
    reopened = Registry.open(open_sdl(private_redis.url), "restart")
    assert reopened.job("j1").phase == "adapting"  # type: ignore[union-attr]
    assert reopened.group_states()["gnb-1"].job_id == "j1"
