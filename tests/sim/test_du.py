"""The emulated DU against a real in-process dApp (gRPC on localhost, tiny ONNX test model),
the traffic model, and the E2 node fed by the dApp's GetStatus."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from csi.presets import TINY
from dapp.client import DappClient
from dapp.server import DappServer, ServerConfig, build_dapp
from sim.du import Du, DuConfig, SyntheticChannels
from sim.e2node import E2Node
from sim.timeline import Timeline, parse_timeline
from sim.traffic import DuMetricsSource, TrafficModel
from sim.transport import E2Message, in_process_pair
from xapp.e2 import (
    ActionDefinition,
    EventTrigger,
    RicAction,
    RicRequestId,
    SubscriptionRequest,
    decode_indication,
    encode_action_definition,
    encode_e2ap,
    encode_event_trigger,
    rmr_types,
)
from xapp.e2 import measurements as m


def _dapp_helpers() -> ModuleType:
    """tests/dapp/dapp_helpers.py (artifact and server helpers shared with the dApp tests)."""
    path = Path(__file__).resolve().parents[1] / "dapp" / "dapp_helpers.py"
    spec = importlib.util.spec_from_file_location("dapp_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HELPERS = _dapp_helpers()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A tiny-preset linear-extrapolation ONNX artifact."""
    return Path(HELPERS.write_test_artifact(tmp_path / "lin-1", "linear", "lin-1"))


@pytest.fixture
def dapp(tmp_path: Path, model: Path) -> Iterator[DappServer]:
    server: DappServer = HELPERS.start_dapp(tmp_path / "state", model)
    yield server
    server.stop(grace_s=0.2)


def _two_phases(shift_s: float, end_s: float, slow: float = 3.0,
                fast: float = 200.0) -> Timeline:
    return parse_timeline({"name": "shift", "phases": [
        {"start_s": 0, "label": "slow", "groups": [{"scenario": "UMa", "speed_kmh": slow}]},
        {"start_s": shift_s, "end_s": end_s, "label": "fast",
         "groups": [{"scenario": "UMi", "speed_kmh": fast}]}]})


def _du(port: int, timeline: Timeline, **config: Any) -> Du:
    cfg = DuConfig(realtime=False, block_occasions=config.pop("block_occasions", 60), **config)
    return Du(f"127.0.0.1:{port}", TINY, timeline, SyntheticChannels(TINY), cfg)


def _settled_status(server: DappServer) -> Any:
    """GetStatus after the dApp's background scoring has caught up."""
    server.engine.wait_background()
    with DappClient(f"127.0.0.1:{server.port}") as client:
        return client.status()


def test_du_gets_a_ready_prediction_for_every_observation(dapp: DappServer) -> None:
    du = _du(dapp.port, _two_phases(0.05, 0.1), n_ues=4, n_cells=2)
    counters = du.run()
    occasions = round(0.1 / TINY.srs_period_s)
    assert counters.occasions == occasions
    assert counters.sent == counters.predictions == counters.ready == 4 * occasions
    assert counters.failed_rpcs == counters.fallbacks == counters.skipped == 0
    # blocks of 60: phase 0 needs 2, phase 1 (a change forces a fresh block) 2 more
    assert counters.blocks == 4
    assert counters.restarts == 4 * counters.blocks
    status = _settled_status(dapp)
    assert status.predictions == 4 * occasions and status.tracked_ues == 4
    assert {g.group: g.predictions for g in status.groups} == {
        str(c): 2 * occasions for c in du.cells}
    assert du.status().phase_label == "fast"


def test_timeline_shift_changes_the_nmse_the_dapp_reports(dapp: DappServer) -> None:
    du = _du(dapp.port, _two_phases(0.25, 0.5), n_ues=2, block_occasions=250)
    du.run(until_s=0.25)
    slow = _settled_status(dapp).groups[0]
    assert du.status().phase_index == 0
    du.run()
    fast = _settled_status(dapp).groups[0]
    assert du.status().phase_index == 1 and du.status().counters.ready == 2 * 1000
    # 3 km/h: linear extrapolation error ~ amplified SRS noise; 200 km/h at 3.5 GHz: ~0.23
    # Doppler cycles per SRS period, far outside what a linear ramp can follow
    assert slow.nmse_db < -3.0
    assert fast.nmse_db > slow.nmse_db + 6.0


def _subscribe(ric: Any, cell: Any, period_ms: int) -> None:
    action = encode_action_definition(ActionDefinition(m.KDRAN_MEASUREMENTS, period_ms, cell))
    request = SubscriptionRequest(RicRequestId(7, 1), 2, encode_event_trigger(
        EventTrigger(period_ms)), (RicAction(1, action),))
    ric.send(E2Message(rmr_types.RIC_SUB_REQ, encode_e2ap(request), 1))


def test_e2_node_reports_the_nmse_the_dapp_reported(dapp: DappServer) -> None:
    du = _du(dapp.port, _two_phases(0.05, 0.1), n_ues=4, n_cells=2)
    du.run()
    status = _settled_status(dapp)
    expected = {g.group: g for g in status.groups}
    ric, node_side = in_process_pair()
    traffic = TrafficModel()
    with DappClient(f"127.0.0.1:{dapp.port}") as client:
        source = DuMetricsSource(client, du.ues_per_cell, traffic, period_s=1.0)
        node = E2Node(node_side, du.cells, source)
        cell = du.cells[1]
        _subscribe(ric, cell, 1000)
        t0 = datetime(2025, 6, 1, tzinfo=UTC)
        node.tick(t0)
        assert ric.receive(timeout=0) is not None  # the subscription response
        assert node.tick(t0 + timedelta(seconds=1)) == 1
    message = ric.receive(timeout=0)
    assert message is not None and message.mtype == rmr_types.RIC_INDICATION
    (report,) = decode_indication(message.payload, cell_id=str(cell)).reports
    group = expected[str(cell)]
    assert report.value(m.CHPRED_NMSE_DB_MEAN) == group.nmse_db
    assert report.value(m.CHPRED_NMSE_DB_P90) == group.nmse_db_p90
    assert report.value(m.CHPRED_COUNT) == group.predictions == 2 * 200
    assert report.value(m.CHPRED_FALLBACK) == 0
    kpis = traffic.kpis(group.nmse_db, 2, 1.0)
    assert report.value(m.DRB_UE_THP_DL) == pytest.approx(kpis.ue_thp_dl_kbps)
    assert report.value(m.TB_ERR_TOTAL_NBR_DL) == kpis.tb_errors


def test_du_reconnects_when_the_dapp_restarts(tmp_path: Path, model: Path) -> None:
    first: DappServer = HELPERS.start_dapp(tmp_path / "state", model)
    port = first.port
    du = _du(port, _two_phases(10.0, 20.0), n_ues=2).start()
    try:
        HELPERS.wait_for(lambda: du.status().counters.ready, lambda n: n > 100)
        first.stop(grace_s=0)
        HELPERS.wait_for(lambda: du.status().counters.failed_rpcs, lambda n: n >= 1)
        second = build_dapp(TINY, tmp_path / "state", model,
                            server_config=ServerConfig(listen=f"127.0.0.1:{port}"))
        second.start()
        try:
            before = du.status().counters.ready
            HELPERS.wait_for(lambda: du.status().counters.ready, lambda n: n > before + 100)
            status = _settled_status(second)
            assert status.tracked_ues == 2 and status.predictions > 100
        finally:
            du.stop()
            second.stop(grace_s=0.2)
    finally:
        du.stop()
    counters = du.status().counters
    assert counters.reconnects >= 2 and counters.failed_rpcs >= 1
    assert counters.sent == counters.predictions == counters.ready


def test_traffic_degrades_with_nmse() -> None:
    model = TrafficModel()
    assert model.bler(model.config.reference_nmse_db) == pytest.approx(0.1)
    nmse = [-30.0, -20.0, -15.0, -12.0, -8.0, 0.0]
    kpis = [model.kpis(x, n_ues=4, period_s=1.0) for x in nmse]
    blers = [k.bler for k in kpis]
    thp = [k.ue_thp_dl_kbps for k in kpis]
    assert blers == sorted(blers) and blers[0] < 0.01 and blers[-1] > 0.99
    assert thp == sorted(thp, reverse=True) and thp[-1] < 0.01 * thp[0]
    for k in kpis:
        assert 0 <= k.tb_errors <= k.tb_total and 0 <= k.prb_used_dl <= model.config.n_prb
    # light load at a good NMSE: 4 UEs x 20 Mbit/s fit in fewer than all PRBs
    assert kpis[0].prb_used_dl < model.config.n_prb
    assert kpis[0].ue_thp_dl_kbps == pytest.approx(20_000.0)
    assert math.isinf(model.sinr_db(5.0)) or model.sinr_db(5.0) < -60


def test_metrics_source_reports_novalue_when_the_dapp_is_down() -> None:
    class Down:
        def status(self) -> Any:
            raise ConnectionError("dApp unreachable")

    du_cells = _du(1, _two_phases(1.0, 2.0), n_ues=2).ues_per_cell
    source = DuMetricsSource(Down(), du_cells)
    (snapshot,) = source(datetime.now(UTC))
    assert source.failed_status == 1
    assert all(v is None for v in snapshot.values.values())
    assert set(snapshot.values) == set(m.KDRAN_MEASUREMENTS)
