"""Trigger policy: one job per group, global budget, cooldown, exponential backoff, manual
trigger and skip — with the state in a registry (fake SDL backend)."""

from __future__ import annotations

import json
import logging

import pytest
from ricxappframe.xapp_sdl import SDLWrapper

from xapp.config import PolicyConfig
from xapp.policy import Policy
from xapp.registry import Registry

CONFIG = PolicyConfig(cooldown_s=100, max_concurrent_jobs=2, backoff_initial_s=10,
                      backoff_factor=2.0, backoff_max_s=35)


def make(config: PolicyConfig = CONFIG) -> tuple[Policy, list[str]]:
    suppressed: list[str] = []
    registry = Registry.open(SDLWrapper(use_fake_sdl=True), "policy")
    return Policy(config, registry, suppressed.append), suppressed


def test_one_job_per_group_and_global_budget() -> None:
    policy, suppressed = make()
    assert policy.decide("a", 0).launch
    policy.started("a", "job-a")
    assert policy.decide("a", 1).reason == "in_flight"
    assert policy.decide("b", 1).launch
    policy.started("b", "job-b")
    assert policy.decide("c", 1).reason == "budget"
    assert policy.decide("c", 1, manual=True).reason == "budget"
    assert suppressed == ["in_flight", "budget", "budget"]


def test_cooldown_after_success_and_manual_bypass() -> None:
    policy, _ = make()
    policy.started("a", "j1")
    policy.finished("a", "j1", succeeded=True, now=1000)
    verdict = policy.decide("a", 1050)
    assert (verdict.reason, verdict.until) == ("cooldown", 1100)
    assert policy.decide("a", 1050, manual=True).launch
    assert policy.decide("a", 1100).launch


def test_exponential_backoff_capped_and_reset_by_success() -> None:
    policy, _ = make()
    waits = []
    now = 0.0
    for i in range(4):
        policy.started("a", f"j{i}")
        state = policy.finished("a", f"j{i}", succeeded=False, now=now)
        waits.append(state.backoff_until - now)
        assert policy.decide("a", now + 1).reason == "backoff"
        now = state.backoff_until
    assert waits == [10, 20, 35, 35]
    policy.started("a", "ok")
    assert policy.finished("a", "ok", succeeded=True, now=now).failures == 0


def test_manual_skip_and_disabled_manual_trigger() -> None:
    policy, _ = make(PolicyConfig(manual_trigger_enabled=False))
    policy.skip("a", 60, now=0)
    assert policy.decide("a", 30).reason == "manual_skip"
    assert policy.decide("a", 61).launch
    assert policy.decide("a", 61, manual=True).reason == "disabled"
    with pytest.raises(ValueError, match="skip duration"):
        policy.skip("a", -1, now=0)


def test_every_decision_is_a_json_log_line(caplog: pytest.LogCaptureFixture) -> None:
    from xapp.logs import JsonFormatter
    policy, _ = make()
    with caplog.at_level(logging.INFO, logger="kdran.xapp.decision"):
        policy.decide("a", 0)
        policy.started("a", "j")
        policy.decide("a", 0)
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    assert [(x["event"], x["reason"]) for x in lines] == [("trigger", "drift"),
                                                          ("trigger_suppressed", "in_flight")]
    assert all(x["group"] == "a" for x in lines)
