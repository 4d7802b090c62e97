"""The DU's E2 node (``sim.du_e2``) against a real dApp: an xApp side subscribes over the in-process
transport with real E2AP/E2SM-KPM bytes and reads back the NMSE the dApp reports; and
``kdran sim du --e2 rmr`` where RMR's library is missing."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_du import HELPERS, _du, _two_phases  # tests/sim is on sys.path (rootdir import mode)

from dapp.client import DappClient
from dapp.server import DappServer
from sim.cli import _status_line
from sim.du_e2 import E2Stats, start_du_e2_node
from sim.transport import E2Message, InProcessEndpoint, TransportError, in_process_pair
from xapp.e2 import (
    ActionDefinition,
    EventTrigger,
    Indication,
    NrCgi,
    RicAction,
    RicIndication,
    RicRequestId,
    SubscriptionDeleteRequest,
    SubscriptionDeleteResponse,
    SubscriptionFailure,
    SubscriptionRequest,
    SubscriptionResponse,
    decode_e2ap,
    decode_indication,
    encode_action_definition,
    encode_e2ap,
    encode_event_trigger,
    rmr_types,
)
from xapp.e2 import measurements as m
from xapp.e2.e2ap import E2apMessage

REPO = Path(__file__).resolve().parents[2]
REQ = RicRequestId(1001, 7)
PERIOD_MS = 100


@pytest.fixture
def dapp(tmp_path: Path) -> Iterator[DappServer]:
    """A tiny-preset dApp serving a linear-extrapolation ONNX model on localhost."""
    model = HELPERS.write_test_artifact(tmp_path / "lin-1", "linear", "lin-1")
    server: DappServer = HELPERS.start_dapp(tmp_path / "state", model)
    yield server
    server.stop(grace_s=0.2)


def _subscribe(ric: InProcessEndpoint, cell: NrCgi, names: tuple[str, ...]) -> None:
    """The xApp's RICsubscriptionRequest: one REPORT action, Format 1 for ``cell``."""
    action = encode_action_definition(ActionDefinition(names, PERIOD_MS, cell))
    request = SubscriptionRequest(REQ, 2, encode_event_trigger(EventTrigger(PERIOD_MS)),
                                  (RicAction(1, action),))
    ric.send(E2Message(rmr_types.RIC_SUB_REQ, encode_e2ap(request), REQ.instance_id))


def _reply(ric: InProcessEndpoint) -> E2apMessage:
    message = ric.receive(timeout=5.0)
    assert message is not None, "no answer from the E2 node within 5 s"
    pdu = decode_e2ap(message.payload)
    assert message.mtype == pdu.rmr_type and message.sub_id == REQ.instance_id
    return pdu


def _indication(ric: InProcessEndpoint, cell: NrCgi) -> Indication:
    message = ric.receive(timeout=5.0)
    assert message is not None, "no indication within 5 s"
    assert message.mtype == rmr_types.RIC_INDICATION
    return decode_indication(message.payload, cell_id=str(cell))


def _until_settled(ric: InProcessEndpoint, cell: NrCgi, dapp: DappServer,
                   client: DappClient) -> tuple[list[Indication], Any]:
    """Wait for the dApp's background scoring, read its GetStatus group of ``cell``, and return
    every indication up to the first one built from a GetStatus after that (an indication's
    tick time is its collection start + one period), with that group."""
    dapp.engine.wait_background()
    settled = datetime.now(UTC) + timedelta(milliseconds=1)  # NTP -> datetime rounding
    group = {g.group: g for g in client.status().groups}[str(cell)]
    seen = [_indication(ric, cell)]
    while seen[-1].header.collection_start + timedelta(milliseconds=PERIOD_MS) < settled:
        seen.append(_indication(ric, cell))
    return seen, group


def test_indications_carry_the_nmse_the_dapp_reports(dapp: DappServer) -> None:
    du = _du(dapp.port, _two_phases(0.1, 0.3), n_ues=4, n_cells=2)
    cell = du.cells[1]
    ric, node_side = in_process_pair()
    with DappClient(f"127.0.0.1:{dapp.port}") as client, \
            start_du_e2_node(du, client, node_side, tick_s=0.01) as e2:
        _subscribe(ric, cell, m.KDRAN_MEASUREMENTS)
        assert _reply(ric) == SubscriptionResponse(REQ, 2, (1,))
        du.run(until_s=0.1)  # 3 km/h
        slow_seen, slow = _until_settled(ric, cell, dapp, client)
        du.run()  # 200 km/h until the timeline ends at 0.3 s
        fast_seen, fast = _until_settled(ric, cell, dapp, client)
        stats = e2.stats()
        traffic = e2.source.traffic
    seen = slow_seen + fast_seen
    assert stats.subscriptions == 1 and stats.indications_sent >= len(seen) >= 2
    assert [i.sequence_number for i in seen] == list(range(1, len(seen) + 1))
    assert all(i.request == REQ and i.action_id == 1 for i in seen)
    assert slow.scored and fast.predictions == 2 * round(0.3 / du.preset.srs_period_s)
    for indication, group in ((slow_seen[-1], slow), (fast_seen[-1], fast)):
        (report,) = indication.reports
        assert report.cell_id == str(cell) and report.granularity_period_ms == PERIOD_MS
        assert list(report.measurements) == list(m.KDRAN_MEASUREMENTS)
        nmse = report.value(m.CHPRED_NMSE_DB_MEAN)
        assert nmse == pytest.approx(group.nmse_db, abs=1e-9)
        assert f"{nmse:+.1f}" == f"{group.nmse_db:+.1f}"  # as the status line shows it
        assert report.value(m.CHPRED_NMSE_DB_P90) == pytest.approx(group.nmse_db_p90, abs=1e-9)
        assert report.value(m.CHPRED_FALLBACK) == 0
        kpis = traffic.kpis(group.nmse_db, du.ues_per_cell()[cell], 1.0)
        assert report.value(m.DRB_UE_THP_DL) == pytest.approx(kpis.ue_thp_dl_kbps)
        assert report.value(m.TB_ERR_TOTAL_NBR_DL) == kpis.tb_errors
    # the speed shift reaches the xApp: worse NMSE, lower throughput
    assert fast.nmse_db > slow.nmse_db + 6.0
    assert (fast_seen[-1].reports[0].value(m.DRB_UE_THP_DL) or 0) < (
        slow_seen[-1].reports[0].value(m.DRB_UE_THP_DL) or 0)
    # VS.ChPred.Count is a per-period delta: over all periods it adds up to the dApp's total
    assert sum(i.reports[0].value(m.CHPRED_COUNT) or 0 for i in seen) == fast.predictions
    with pytest.raises(TransportError):  # stopping the node closed its transport
        ric.send(E2Message(rmr_types.RIC_SUB_DEL_REQ, b"", REQ.instance_id))


def test_unknown_measurement_is_refused_and_delete_ends_reports(dapp: DappServer) -> None:
    du = _du(dapp.port, _two_phases(1.0, 2.0), n_ues=2)
    (cell,) = du.cells
    ric, node_side = in_process_pair()
    with DappClient(f"127.0.0.1:{dapp.port}") as client, \
            start_du_e2_node(du, client, node_side, tick_s=0.01) as e2:
        _subscribe(ric, cell, (m.CHPRED_NMSE_DB_MEAN, "VS.NoSuch.Measurement"))
        failure = _reply(ric)
        assert isinstance(failure, SubscriptionFailure) and failure.request == REQ
        assert str(failure.cause) == "ricRequest/requested-information-unavailable"
        assert ric.receive(timeout=3 * PERIOD_MS / 1000) is None  # no reports follow
        _subscribe(ric, cell, (m.CHPRED_NMSE_DB_MEAN,))
        assert _reply(ric) == SubscriptionResponse(REQ, 2, (1,))
        (report,) = _indication(ric, cell).reports
        assert report.value(m.CHPRED_NMSE_DB_MEAN) is None  # nothing scored yet: noValue
        delete = SubscriptionDeleteRequest(REQ, 2)
        ric.send(E2Message(rmr_types.RIC_SUB_DEL_REQ, encode_e2ap(delete), REQ.instance_id))
        reply = _reply(ric)
        while isinstance(reply, RicIndication):  # sent before the node saw the delete
            reply = _reply(ric)
        assert reply == SubscriptionDeleteResponse(REQ, 2)
        assert ric.receive(timeout=3 * PERIOD_MS / 1000) is None
        assert e2.stats().subscriptions == 0 and e2.stats().indications_sent >= 1


def test_status_line_shows_the_e2_counters() -> None:
    du = _du(1, _two_phases(1.0, 2.0), n_ues=2)
    assert "e2_subs" not in _status_line(du, None, (0.0, 0))
    line = _status_line(du, None, (0.0, 0), E2Stats(subscriptions=1, indications_sent=42))
    assert line.endswith(" e2_subs=1 indications=42")


def _librmr_loads() -> bool:
    try:
        ctypes.CDLL("librmr_si.so")
    except OSError:
        return False
    return True


@pytest.mark.skipif(_librmr_loads(), reason="librmr_si.so is installed here")
def test_e2_rmr_without_librmr_fails_fast_with_one_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kdran", "sim", "du", "--e2", "rmr", "--preset", "tiny",
         "--channel", "synthetic", "--dapp", "127.0.0.1:1", "--duration", "0.01"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: --e2 rmr needs RMR's C library librmr_si.so")
    assert "RMR_SEED_RT" in line and "Traceback" not in result.stderr
