"""The emulated E2 node over the in-process transport: subscribe, report, decode, unsubscribe."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from sim.e2node import CellSnapshot, E2Node, E2NodeRunner, UeSnapshot, ue_matches
from sim.transport import E2Message, InProcessEndpoint, TransportError, in_process_pair
from xapp.e2 import (
    ActionDefinition,
    EventTrigger,
    NrCgi,
    RicAction,
    RicRequestId,
    SubscriptionDeleteFailure,
    SubscriptionDeleteRequest,
    SubscriptionDeleteResponse,
    SubscriptionFailure,
    SubscriptionRequest,
    SubscriptionResponse,
    UeCondition,
    UeId,
    decode_e2ap,
    decode_indication,
    encode_action_definition,
    encode_e2ap,
    encode_event_trigger,
    rmr_types,
)
from xapp.e2.e2ap import E2apMessage
from xapp.e2.measurements import (
    CHPRED_COUNT,
    CHPRED_NMSE_DB_MEAN,
    DRB_UE_THP_DL,
    KDRAN_MEASUREMENTS,
)

CELL_A, CELL_B = NrCgi("00101", 1), NrCgi("00101", 2)
T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
REQ = RicRequestId(1001, 5)


class FakeDu:
    """A deterministic metrics source: NMSE drifts by -0.1 dB per call, counts grow."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, now: datetime) -> Sequence[CellSnapshot]:
        self.calls += 1
        return [CellSnapshot(cell, {CHPRED_NMSE_DB_MEAN: -20.0 + 0.1 * self.calls + k,
                                    CHPRED_COUNT: 100 * self.calls}, self._ues(10 * k))
                for k, cell in enumerate((CELL_A, CELL_B))]

    @staticmethod
    def _ues(base: int) -> tuple[UeSnapshot, ...]:
        """UEs base+1..base+4 (F1AP ids are unique per DU), CQI 1..4."""
        return tuple(UeSnapshot(base + i, {DRB_UE_THP_DL: 1000.0 * i}, {"cQI": i})
                     for i in range(1, 5))


def _node(cells: Sequence[NrCgi] = (CELL_A, CELL_B)) -> tuple[InProcessEndpoint, E2Node, FakeDu]:
    ric, node_side = in_process_pair()
    source = FakeDu()
    return ric, E2Node(node_side, cells, source), source


def _subscribe(ric: InProcessEndpoint, action_def: bytes, period_ms: int = 1000,
               request: RicRequestId = REQ) -> None:
    req = SubscriptionRequest(request, 2, encode_event_trigger(EventTrigger(period_ms)),
                              (RicAction(1, action_def),))
    ric.send(E2Message(rmr_types.RIC_SUB_REQ, encode_e2ap(req), request.instance_id))


def _reply(ric: InProcessEndpoint) -> E2apMessage:
    message = ric.receive(timeout=0)
    assert message is not None
    pdu = decode_e2ap(message.payload)
    assert message.mtype == pdu.rmr_type
    return pdu


def test_cell_subscription_to_indications_round_trip() -> None:
    ric, node, _ = _node()
    _subscribe(ric, encode_action_definition(ActionDefinition(KDRAN_MEASUREMENTS, 1000, CELL_B)))
    assert node.tick(T0) == 0
    assert _reply(ric) == SubscriptionResponse(REQ, 2, (1,))
    assert node.tick(T0 + timedelta(milliseconds=999)) == 0
    seen = []
    for second in (1, 2, 3):
        assert node.tick(T0 + timedelta(seconds=second)) == 1
        message = ric.receive(timeout=0)
        assert message is not None and message.mtype == 12050 and message.sub_id == 5
        ind = decode_indication(message.payload, cell_id=str(CELL_B))
        assert ind.sequence_number == second and ind.request == REQ
        assert ind.header.collection_start == T0 + timedelta(seconds=second - 1)
        (report,) = ind.reports
        assert report.cell_id == str(CELL_B) and report.granularity_period_ms == 1000
        assert list(report.measurements) == list(KDRAN_MEASUREMENTS)
        seen.append(report)
    # the values are exactly what the source returned for cell B (offset +1 dB)
    assert [r.value(CHPRED_NMSE_DB_MEAN) for r in seen] == pytest.approx([-18.9, -18.8, -18.7])
    assert [r.value(CHPRED_COUNT) for r in seen] == [100, 200, 300]
    assert seen[0].value("RRU.PrbUsedDl") is None  # not provided -> noValue


def test_bad_action_definition_gets_a_failure_not_a_crash() -> None:
    ric, node, _ = _node()
    _subscribe(ric, b"\xde\xad\xbe\xef")
    node.tick(T0)
    reply = _reply(ric)
    assert isinstance(reply, SubscriptionFailure)
    assert str(reply.cause) == "ricRequest/action-not-supported"
    assert node.subscriptions == frozenset()


def test_unknown_measurement_is_refused() -> None:
    ric, node, _ = _node()
    _subscribe(ric, encode_action_definition(ActionDefinition(("No.Such.Counter",), 1000, CELL_A)))
    node.tick(T0)
    reply = _reply(ric)
    assert isinstance(reply, SubscriptionFailure)
    assert reply.cause.value == "requested-information-unavailable"


def test_cell_level_action_without_cell_on_multi_cell_node_is_refused() -> None:
    ric, node, _ = _node()
    _subscribe(ric, encode_action_definition(ActionDefinition(KDRAN_MEASUREMENTS, 1000)))
    node.tick(T0)
    assert isinstance(_reply(ric), SubscriptionFailure)


def test_bad_event_trigger_and_wrong_ran_function() -> None:
    ric, node, _ = _node()
    action = encode_action_definition(ActionDefinition(KDRAN_MEASUREMENTS, 1000, CELL_A))
    for ran_function, trigger in ((2, b"\x7f"), (9, b"")):
        request = SubscriptionRequest(REQ, ran_function, trigger, (RicAction(1, action),))
        ric.send(E2Message(12010, encode_e2ap(request)))
    ric.send(E2Message(12010, b"garbage"))  # undecodable: logged and dropped
    node.tick(T0)
    first, second = _reply(ric), _reply(ric)
    assert isinstance(first, SubscriptionFailure)
    assert first.cause.value == "eventTriggerNotSupported"
    assert isinstance(second, SubscriptionFailure)
    assert second.cause.value == "ran-function-id-invalid"
    assert ric.receive(timeout=0) is None


def test_per_ue_format4_subscription_reports_matching_ues() -> None:
    ric, node, _ = _node()
    condition = (UeCondition("cQI", "greaterthan", 2),)
    _subscribe(ric, encode_action_definition(
        ActionDefinition((DRB_UE_THP_DL,), 500, CELL_A, ue_conditions=condition)), period_ms=500)
    node.tick(T0)
    assert isinstance(_reply(ric), SubscriptionResponse)
    node.tick(T0 + timedelta(milliseconds=500))
    message = ric.receive(timeout=0)
    assert message is not None
    ind = decode_indication(message.payload)
    assert [r.ue_id for r in ind.reports] == [UeId.du(3), UeId.du(4)]
    assert [r.value(DRB_UE_THP_DL) for r in ind.reports] == [3000.0, 4000.0]


def test_per_ue_format5_subscription_reports_listed_ues() -> None:
    ric, node, _ = _node()
    _subscribe(ric, encode_action_definition(ActionDefinition(
        (DRB_UE_THP_DL,), 1000, ue_ids=(UeId.du(1), UeId.du(14)))))
    node.tick(T0)
    _reply(ric)
    node.tick(T0 + timedelta(seconds=1))
    message = ric.receive(timeout=0)
    assert message is not None
    ind = decode_indication(message.payload)
    # no cell in the definition: the listed UEs are found in whichever cell serves them
    assert [str(r.ue_id) for r in ind.reports] == ["gNB-DU-UEID:1", "gNB-DU-UEID:14"]
    assert [r.value(DRB_UE_THP_DL) for r in ind.reports] == [1000.0, 4000.0]


def test_delete_stops_reports_and_unknown_delete_fails() -> None:
    ric, node, source = _node(cells=(CELL_A,))
    _subscribe(ric, encode_action_definition(ActionDefinition(KDRAN_MEASUREMENTS, 1000)))
    node.tick(T0)
    _reply(ric)
    ric.send(E2Message(12020, encode_e2ap(SubscriptionDeleteRequest(REQ, 2))))
    ric.send(E2Message(12020, encode_e2ap(SubscriptionDeleteRequest(RicRequestId(9, 9), 2))))
    assert node.tick(T0 + timedelta(seconds=5)) == 0
    assert _reply(ric) == SubscriptionDeleteResponse(REQ, 2)
    assert isinstance(_reply(ric), SubscriptionDeleteFailure)
    assert source.calls == 0


def test_missed_periods_are_skipped_not_burst() -> None:
    ric, node, _ = _node(cells=(CELL_A,))
    _subscribe(ric, encode_action_definition(ActionDefinition(KDRAN_MEASUREMENTS, 100)), 100)
    node.tick(T0)
    _reply(ric)
    assert node.tick(T0 + timedelta(seconds=10)) == 1
    assert node.tick(T0 + timedelta(seconds=10, milliseconds=50)) == 0
    assert node.tick(T0 + timedelta(seconds=10, milliseconds=100)) == 1


def test_ue_condition_logic() -> None:
    ue = UeSnapshot(1, {}, {"cQI": 7, "rSRP": -100.0})
    low_cqi = UeCondition("cQI", "lessthan", 5, logical_or=True)
    weak = UeCondition("rSRP", "lessthan", -90.0)
    assert ue_matches((low_cqi, weak), ue)  # false OR true
    assert not ue_matches((UeCondition("cQI", "lessthan", 5), weak), ue)  # false AND true
    assert ue_matches((UeCondition("rSRP", "present"),), ue)
    assert not ue_matches((UeCondition("fiveQI", "equal", 9),), ue)


def test_runner_reports_in_real_time() -> None:
    ric, node, _ = _node(cells=(CELL_A,))
    _subscribe(ric, encode_action_definition(ActionDefinition(KDRAN_MEASUREMENTS, 50)), 50)
    with E2NodeRunner(node, interval_s=0.005):
        assert isinstance(decode_e2ap(_wait(ric).payload), SubscriptionResponse)
        ind = decode_indication(_wait(ric).payload)
    assert ind.reports and node.indications_sent >= 1


def _wait(endpoint: InProcessEndpoint) -> E2Message:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = endpoint.receive(timeout=0.1)
        if message is not None:
            return message
    raise AssertionError("nothing received within 5 s")


def test_transport_closed_and_full() -> None:
    ric, node_side = in_process_pair(depth=1)
    ric.send(E2Message(1, b"a"))
    with pytest.raises(TransportError, match="full"):
        ric.send(E2Message(1, b"b"))
    node_side.close()
    assert node_side.receive(timeout=None) is None
    with pytest.raises(TransportError):
        ric.send(E2Message(1, b"c"))
