"""E2AP via pycrate: every supported message round-trips byte-identically; indication decode."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from xapp.e2 import (
    ActionDefinition,
    Cause,
    E2DecodeError,
    E2EncodeError,
    EventTrigger,
    KpmHeader,
    KpmReport,
    MeasValue,
    NrCgi,
    RicAction,
    RicIndication,
    RicRequestId,
    SubscriptionDeleteFailure,
    SubscriptionDeleteRequest,
    SubscriptionDeleteResponse,
    SubscriptionFailure,
    SubscriptionRequest,
    SubscriptionResponse,
    UeId,
    decode_e2ap,
    decode_indication,
    encode_action_definition,
    encode_e2ap,
    encode_event_trigger,
    encode_indication_header,
    encode_indication_message,
    rmr_types,
)
from xapp.e2.e2ap import E2apMessage
from xapp.e2.measurements import KDRAN_MEASUREMENTS

REQ = RicRequestId(1001, 7)
START = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
REFUSED = Cause("ricRequest", "action-not-supported")


def _indication(reports: list[KpmReport], sn: int | None = 3) -> RicIndication:
    return RicIndication(REQ, 2, 1, encode_indication_header(KpmHeader(START)),
                         encode_indication_message(reports), sequence_number=sn)


def _cell_reports() -> list[KpmReport]:
    values = {n: MeasValue.of(v) for n, v in zip(
        KDRAN_MEASUREMENTS, (-15.0, -9.75, 800, 2, 40000.25, 3000, 30, 42), strict=True)}
    return [KpmReport(START, 1000, values)]


MESSAGES: list[E2apMessage] = [
    SubscriptionRequest(REQ, 2, encode_event_trigger(EventTrigger(1000)), (
        RicAction(1, encode_action_definition(
            ActionDefinition(KDRAN_MEASUREMENTS, 1000, NrCgi("00101", 1)))),
        RicAction(2, None, "insert"))),
    SubscriptionResponse(REQ, 2, (1,)),
    SubscriptionResponse(REQ, 2, (1, 3), ((2, REFUSED),)),
    SubscriptionFailure(REQ, 2, Cause("ricRequest", "requested-information-unavailable")),
    SubscriptionDeleteRequest(REQ, 2),
    SubscriptionDeleteResponse(REQ, 2),
    SubscriptionDeleteFailure(REQ, 2, Cause("ricRequest", "request-id-unknown")),
    _indication(_cell_reports()),
    RicIndication(REQ, 2, 1, b"\x01", b"\x02", None, "insert", b"call-7"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_byte_identical(message: E2apMessage) -> None:
    data = encode_e2ap(message)
    decoded = decode_e2ap(data)
    assert decoded == message
    assert encode_e2ap(decoded) == data


def test_rmr_types_per_message() -> None:
    assert {type(m).__name__: m.rmr_type for m in MESSAGES} == {
        "SubscriptionRequest": rmr_types.RIC_SUB_REQ, "SubscriptionResponse": 12011,
        "SubscriptionFailure": 12012, "SubscriptionDeleteRequest": 12020,
        "SubscriptionDeleteResponse": 12021, "SubscriptionDeleteFailure": 12022,
        "RicIndication": 12050}


def test_out_of_range_ids_are_encode_errors() -> None:
    with pytest.raises(E2EncodeError):
        encode_e2ap(SubscriptionDeleteRequest(RicRequestId(70000, 1), 2))
    with pytest.raises(E2EncodeError):
        encode_e2ap(SubscriptionDeleteRequest(REQ, 4096))  # RANfunctionID is 0..4095


def test_decode_indication_cell_level() -> None:
    data = encode_e2ap(_indication(_cell_reports()))
    ind = decode_indication(data, cell_id="00101-000000001")
    assert (ind.request, ind.ran_function_id, ind.action_id, ind.sequence_number) == (REQ, 2, 1, 3)
    assert ind.indication_type == "report" and ind.header.collection_start == START
    (report,) = ind.reports
    assert report.cell_id == "00101-000000001" and report.ue_id is None
    assert report.value("VS.ChPred.NmseDb.Mean") == -15.0
    assert report.value("VS.ChPred.Count") == 800


def test_decode_indication_per_ue() -> None:
    reports = [KpmReport(START, 1000, {"DRB.UEThpDl": MeasValue.real(100.0 + i)},
                         ue_id=UeId.du(i)) for i in range(64)]
    ind = decode_indication(encode_e2ap(_indication(reports)))
    assert len(ind.reports) == 64
    assert ind.reports[63].ue_id == UeId.du(63) and ind.reports[63].value("DRB.UEThpDl") == 163.0


def test_decode_indication_refuses_other_messages() -> None:
    with pytest.raises(E2DecodeError, match="expected a RICindication"):
        decode_indication(encode_e2ap(SubscriptionDeleteRequest(REQ, 2)))


def test_decode_indication_with_bad_kpm_content() -> None:
    bad = RicIndication(REQ, 2, 1, b"\xff\xff", b"\x00")
    with pytest.raises(E2DecodeError, match="IndicationHeader"):
        decode_indication(encode_e2ap(bad))


def test_concurrent_use_is_serialised() -> None:
    """pycrate objects are singletons: the module lock must keep threads from mixing values."""
    errors: list[str] = []

    def worker(instance: int) -> None:
        msg = SubscriptionDeleteRequest(RicRequestId(1, instance), 2)
        for _ in range(40):
            if decode_e2ap(encode_e2ap(msg)) != msg:
                errors.append(f"thread {instance} saw a foreign value")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
