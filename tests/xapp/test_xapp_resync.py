"""The xApp re-syncs its registry with the dApps' ``GetStatus``: the reconcile logic on a fake
status, and a real ``kdran dapp serve`` SIGKILLed and restarted in the middle of a rollout."""

from __future__ import annotations

import importlib.util
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ricxappframe.xapp_sdl import SDLWrapper

from kdran.net import free_port
from xapp.config import RolloutConfig
from xapp.metrics import XappMetrics
from xapp.registry import ModelRecord, Registry
from xapp.resync import Resync, WatchedDapp
from xapp.rollout import InFlight, Rollout, RolloutInterrupted, RolloutResult, RolloutTarget


def _dapp_helpers() -> ModuleType:
    """tests/dapp/dapp_helpers.py (test ONNX artifacts without torch)."""
    path = Path(__file__).resolve().parents[1] / "dapp" / "dapp_helpers.py"
    spec = importlib.util.spec_from_file_location("dapp_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Versions:
    active: str = ""
    shadow: str = ""
    previous: str = ""


@dataclass
class Status:
    versions: Versions
    uptime_s: float = 100.0
    models: list[Any] = field(default_factory=list)


def _registry(*versions: str) -> Registry:
    registry = Registry(SDLWrapper(use_fake_sdl=True), "resync-test")
    for version in versions:
        registry.put_model(ModelRecord(version, "0" * 64, f"/store/{version}"))
    return registry


def _states(registry: Registry, dapp: str) -> dict[str, str]:
    return {m.version: m.states[dapp] for m in registry.models() if dapp in m.states}


def test_reconcile_rewrites_roles_and_states_to_the_dapps_truth() -> None:
    registry = _registry("v1", "v2", "v3")
    registry.set_model_state("v1", "du-1", "retired")
    registry.set_model_state("v2", "du-1", "active")
    registry.set_model_state("v3", "du-1", "shadow")
    registry.put_dapp_roles("du-1", {"active": "v2", "shadow": "v3", "previous": "v1"})
    seen: list[tuple[str, dict[str, str]]] = []
    metrics = XappMetrics()
    resync = Resync(registry, InFlight(), lambda dapp, roles: seen.append((dapp, roles)),
                    metrics.record_resync)

    # The dApp lost v3 and serves v1 (e.g. v2 failed to load after a restart).
    report = resync.reconcile("du-1", Status(Versions(active="v1")))

    truth = {"active": "v1", "shadow": "", "previous": ""}
    assert registry.dapp_roles("du-1") == truth and seen == [("du-1", truth)]
    assert _states(registry, "du-1") == {"v1": "active", "v2": "retired", "v3": "discarded"}
    assert set(report.corrections) == {
        "active: 'v2' -> 'v1'", "shadow: 'v3' -> ''", "previous: 'v1' -> ''",
        "model v1: 'retired' -> 'active'", "model v2: 'active' -> 'retired'",
        "model v3: 'shadow' -> 'discarded'"}
    assert (report.restarted, report.interrupted) == (False, "")
    # A second pass finds nothing left to correct and writes nothing.
    assert resync.reconcile("du-1", Status(Versions(active="v1"), uptime_s=101)).corrections == ()
    assert len(seen) == 1
    # The corrections are counted per dApp (the metric the dashboards and alerts can use).
    assert metrics.registry.get_sample_value("kdran_xapp_resync_corrections_total",
                                             {"dapp": "du-1"}) == 6


def test_reconcile_records_models_the_registry_had_not_placed() -> None:
    registry = _registry("v1", "v2")
    report = Resync(registry, InFlight()).reconcile(
        "du-2", Status(Versions(active="v1", shadow="v2", previous="v0")))
    assert _states(registry, "du-2") == {"v1": "active", "v2": "shadow"}  # v0 is unknown
    assert registry.dapp_roles("du-2") == {"active": "v1", "shadow": "v2", "previous": "v0"}
    assert "model v2: '' -> 'shadow'" in report.corrections


@pytest.mark.parametrize(("uptime_s", "shadow", "interrupted"), [
    (200.0, "v2", ""),        # same process, shadow still there: the rollout goes on
    (3.0, "v2", "v2"),        # restarted (uptime went down): scores lost, shadow kept
    (200.0, "", "v2"),        # no restart seen but the shadow vanished
])
def test_reconcile_interrupts_a_rollout_the_dapp_cannot_finish(uptime_s: float, shadow: str,
                                                               interrupted: str) -> None:
    registry, in_flight, metrics = _registry("v1", "v2"), InFlight(), XappMetrics()
    resync = Resync(registry, in_flight, on_report=metrics.record_resync)
    resync.reconcile("du-1", Status(Versions(active="v1", shadow="v2"), uptime_s=100.0))
    in_flight.begin("du-1", "v2")
    report = resync.reconcile("du-1", Status(Versions(active="v1", shadow=shadow),
                                             uptime_s=uptime_s))
    assert report.interrupted == interrupted
    assert report.restarted == (uptime_s < 100.0)
    restarts = metrics.registry.get_sample_value("kdran_xapp_dapp_restarts_total",
                                                 {"dapp": "du-1"})
    assert restarts == (1.0 if report.restarted else 0.0)
    if interrupted:
        with pytest.raises(RolloutInterrupted, match=r"restarted|no longer on the dApp"):
            in_flight.check("du-1")
    else:
        in_flight.check("du-1")


@dataclass
class FlakyDapp:
    """A dApp client whose ``status`` fails while ``up`` is False; counts calls."""

    status_value: Status
    up: bool = True
    calls: int = 0

    def status(self) -> Status:
        self.calls += 1
        if not self.up:
            raise ConnectionError("UNAVAILABLE: connection refused")
        return self.status_value


def test_a_call_that_succeeds_after_a_failure_resyncs() -> None:
    registry = _registry("v1")
    registry.put_dapp_roles("du-1", {"active": "v0", "shadow": "", "previous": ""})
    inner = FlakyDapp(Status(Versions(active="v1"), uptime_s=50.0))
    watched = WatchedDapp("du-1", inner, Resync(registry, InFlight()))
    watched.status()
    assert registry.dapp_roles("du-1")["active"] == "v0"   # plain calls do not re-sync
    inner.up = False
    with pytest.raises(ConnectionError):
        watched.status()
    assert watched.down
    inner.up, inner.status_value.uptime_s = True, 1.0
    watched.status()
    assert not watched.down
    assert registry.dapp_roles("du-1") == {"active": "v1", "shadow": "", "previous": ""}
    assert _states(registry, "du-1") == {"v1": "active"}


# -- a real dApp, killed and restarted during a rollout ------------------------------------------


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        time.sleep(0.05)


def test_sigkilled_dapp_mid_rollout_is_resynced(tmp_path: Path) -> None:
    from dapp.client import DappClient

    helpers = _dapp_helpers()
    artifacts = {v: helpers.write_test_artifact(tmp_path / "art" / v, kind, v)
                 for v, kind in (("lin-1", "linear"), ("out-2", "outdated"), ("lin-3", "linear"))}
    state, log, port = tmp_path / "state", tmp_path / "dapp.log", free_port()
    registry = _registry(*artifacts)
    in_flight = InFlight()
    resync = Resync(registry, in_flight)
    client = DappClient(f"127.0.0.1:{port}", timeout_s=2.0)
    watched = WatchedDapp("du-1", client, resync)
    config = RolloutConfig(min_scored_predictions=10**9, shadow_timeout_s=120.0,
                           poll_interval_s=0.1, shadow_listing_timeout_s=60.0)
    rollout = Rollout(config, registry, in_flight=in_flight)
    proc = helpers.serve_subprocess(state, port, log, seed=artifacts["lin-1"])
    results: list[RolloutResult] = []
    try:
        client.wait_ready(timeout_s=60)
        # out-2 ACTIVE through the client + registry, then lin-3 through a rollout (shadow).
        client.deploy_model(artifacts["out-2"], "out-2", "active")
        resync.sync("du-1", watched)
        assert _states(registry, "du-1") == {"out-2": "active"}
        worker = threading.Thread(target=lambda: results.append(
            rollout.run("lin-3", artifacts["lin-3"], [RolloutTarget("du-1", watched)])))
        worker.start()
        _wait(lambda: in_flight.version("du-1") == "lin-3", 30, "lin-3 in its shadow phase")
        assert registry.dapp_roles("du-1") == {"active": "out-2", "shadow": "lin-3",
                                               "previous": "lin-1"}

        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        _wait(lambda: watched.down, 30, "the rollout's status poll to fail")
        assert in_flight.version("du-1") == "lin-3"          # the rollout waits, it did not fail
        proc = helpers.serve_subprocess(state, port, log)    # same port, same state dir
        worker.join(timeout=90)
        assert not worker.is_alive()
        [result] = results
        assert result.outcome == "interrupted" and "restarted" in result.reason, result
        assert "shadow kept" in result.reason               # the dApp restored lin-3 ...
        truth = client.status().versions                     # ... and the rollout removed it
        assert (truth.active, truth.shadow, truth.previous) == ("out-2", "", "lin-1")
        assert registry.dapp_roles("du-1") == {"active": truth.active, "shadow": truth.shadow,
                                               "previous": truth.previous}
        assert _states(registry, "du-1") == {"out-2": "active", "lin-3": "discarded"}
        assert resync.sync("du-1", watched).corrections == ()   # nothing left to correct
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
    assert "Traceback" not in log.read_text()
