"""E2SM-KPM v03.00 codec: public vector, typed round trips (byte-identical), error paths."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from xapp.e2 import (
    ActionDefinition,
    E2DecodeError,
    E2EncodeError,
    EventTrigger,
    EventTriggerStyle,
    KpmHeader,
    KpmReport,
    MeasKind,
    MeasValue,
    NrCgi,
    RanFunctionDefinition,
    ReportStyle,
    UeCondition,
    UeId,
    decode_action_definition,
    decode_event_trigger,
    decode_indication_header,
    decode_indication_message,
    decode_ran_function_definition,
    encode_action_definition,
    encode_event_trigger,
    encode_indication_header,
    encode_indication_message,
    encode_ran_function_definition,
)
from xapp.e2.kpm_asn import compiled_kpm, kpm_decode, kpm_encode
from xapp.e2.measurements import KDRAN_MEASUREMENTS
from xapp.e2.ntp import datetime_to_ntp, ntp_to_datetime

PUBLIC_F1_VECTOR = bytes.fromhex("080000000100000000002043514901200000")
START = datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
HEADER = KpmHeader(START)
CELL = NrCgi("00101", 0x1234567)


def _values(seed: int) -> dict[str, MeasValue]:
    raw = (-12.5 - seed, -8.25, 1000 + seed, 3, 51234.5, 5000, 50, None)
    return {n: MeasValue.of(v) for n, v in zip(KDRAN_MEASUREMENTS, raw, strict=True)}


def test_public_format1_vector_is_one_cqi_integer_without_label() -> None:
    raw = kpm_decode("E2SM-KPM-IndicationMessage", PUBLIC_F1_VECTOR)
    kind, body = raw["indicationMessage-formats"]
    assert kind == "indicationMessage-Format1"
    assert body["measInfoList"] == [{"measType": ("measName", "CQI"),
                                     "labelInfoList": [{"measLabel": {"noLabel": "true"}}]}]
    (report,) = decode_indication_message(PUBLIC_F1_VECTOR, HEADER)
    assert report.measurements == {"CQI": MeasValue(MeasKind.INTEGER, 0)}
    assert report.granularity_period_ms is None and not report.incomplete
    assert report.ue_id is None and report.collection_start == START
    assert encode_indication_message([report]) == PUBLIC_F1_VECTOR


def test_compiled_once_and_timed() -> None:
    first, second = compiled_kpm(), compiled_kpm()
    assert first is second
    assert 0 < first.compile_seconds < 60


@pytest.mark.parametrize("moment", [START, datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                                    datetime(2036, 2, 7, 6, 28, 15, tzinfo=UTC)])
def test_ntp_round_trip(moment: datetime) -> None:
    assert ntp_to_datetime(datetime_to_ntp(moment)) == moment


def test_ntp_known_value() -> None:
    # 1970-01-01 is 2208988800 s after the NTP epoch; half a second is fraction 0x80000000.
    stamp = datetime_to_ntp(datetime(1970, 1, 1, 0, 0, 0, 500000, tzinfo=UTC))
    assert stamp == (2208988800).to_bytes(4, "big") + bytes.fromhex("80000000")
    with pytest.raises(E2EncodeError):
        datetime_to_ntp(datetime(2025, 1, 1))  # naive


def test_header_round_trip_byte_identical() -> None:
    header = KpmHeader(START, file_format_version="v3", sender_name="du-1", sender_type="DU",
                       vendor_name="kdran")
    data = encode_indication_header(header)
    assert decode_indication_header(data) == header
    assert encode_indication_header(decode_indication_header(data)) == data


def test_v2_style_four_octet_timestamp_is_refused() -> None:
    """KPM v2.0x used a 4-octet TimeStamp; v03.00 requires 8 (SIZE(8) is checked both ways)."""
    v2_style = {"indicationHeader-formats": ("indicationHeader-Format1",
                                             {"colletStartTime": b"\x00" * 4})}
    with pytest.raises(E2EncodeError):
        kpm_encode("E2SM-KPM-IndicationHeader", v2_style)
    with pytest.raises(E2DecodeError):
        decode_indication_header(encode_indication_header(HEADER)[:5])


def test_format1_multi_record_round_trip() -> None:
    reports = [KpmReport(START + timedelta(milliseconds=100 * i), 100, _values(i),
                         incomplete=(i == 1)) for i in range(3)]
    data = encode_indication_message(reports)
    decoded = decode_indication_message(data, HEADER)
    assert list(decoded) == reports
    assert encode_indication_message(decoded) == data
    assert decoded[0].value("RRU.PrbUsedDl") is None
    assert decoded[0].measurements["VS.ChPred.Count"].kind is MeasKind.INTEGER
    assert decoded[0].measurements["DRB.UEThpDl"].kind is MeasKind.REAL


def test_cell_id_is_stamped_from_subscription() -> None:
    data = encode_indication_message([KpmReport(START, 1000, _values(0))])
    (report,) = decode_indication_message(data, HEADER, cell_id=str(CELL))
    assert report.cell_id == "00101-001234567"


def test_format3_round_trip_one_report_per_ue() -> None:
    reports = [KpmReport(START, 1000, _values(i), ue_id=UeId.du(i)) for i in range(5)]
    data = encode_indication_message(reports)
    decoded = decode_indication_message(data, HEADER)
    assert [r.ue_id for r in decoded] == [UeId.du(i) for i in range(5)]
    assert list(decoded) == reports
    assert encode_indication_message(decoded) == data


def test_mixed_cell_and_ue_reports_refused() -> None:
    with pytest.raises(E2EncodeError):
        encode_indication_message([KpmReport(START, 1, _values(0)),
                                   KpmReport(START, 1, _values(0), ue_id=UeId.du(1))])


def test_special_reals_survive() -> None:
    values = {"a": MeasValue.real(math.inf), "b": MeasValue.real(-0.0),
              "c": MeasValue.real(math.nan)}
    (report,) = decode_indication_message(
        encode_indication_message([KpmReport(START, None, values)]), HEADER)
    assert report.value("a") == math.inf
    nan = report.value("c")
    assert nan is not None and math.isnan(nan)


def test_format1_without_info_list_uses_subscribed_names() -> None:
    raw = {"indicationMessage-formats": ("indicationMessage-Format1", {
        "measData": [{"measRecord": [("integer", 7), ("real", 1.5)]}], "granulPeriod": 10})}
    data = kpm_encode("E2SM-KPM-IndicationMessage", raw)
    with pytest.raises(E2DecodeError, match="no measurement information list"):
        decode_indication_message(data, HEADER)
    (report,) = decode_indication_message(data, HEADER, measurement_names=["x", "y"])
    assert report.measurements == {"x": MeasValue.integer(7), "y": MeasValue.real(1.5)}


def test_labels_and_measurement_ids_make_distinct_keys() -> None:
    raw = {"indicationMessage-formats": ("indicationMessage-Format1", {
        "measData": [{"measRecord": [("integer", 1), ("integer", 2), ("noValue", None)]}],
        "measInfoList": [
            {"measType": ("measName", "DRB.UEThpDl"),
             "labelInfoList": [{"measLabel": {"fiveQI": 9}}, {"measLabel": {"fiveQI": 7}}]},
            {"measType": ("measID", 42), "labelInfoList": [{"measLabel": {"noLabel": "true"}}]}]})}
    (report,) = decode_indication_message(kpm_encode("E2SM-KPM-IndicationMessage", raw), HEADER)
    assert list(report.measurements) == ["DRB.UEThpDl[fiveQI=9]", "DRB.UEThpDl[fiveQI=7]", "#42"]
    assert report.measurements["#42"] == MeasValue.no_value()


def test_record_length_mismatch_is_a_decode_error() -> None:
    raw = {"indicationMessage-formats": ("indicationMessage-Format1", {
        "measData": [{"measRecord": [("integer", 1)]}],
        "measInfoList": [{"measType": ("measName", n),
                          "labelInfoList": [{"measLabel": {"noLabel": "true"}}]}
                         for n in ("a", "b")]})}
    with pytest.raises(E2DecodeError, match="1 values for 2"):
        decode_indication_message(kpm_encode("E2SM-KPM-IndicationMessage", raw), HEADER)


def test_format2_decodes_and_raw_round_trips() -> None:
    raw = {"indicationMessage-formats": ("indicationMessage-Format2", {
        "measData": [{"measRecord": [("integer", 11), ("real", 2.5)]}],
        "measCondUEidList": [
            {"measType": ("measName", "DRB.UEThpDl"),
             "matchingCond": [{"matchingCondChoice": ("measLabel", {"fiveQI": 9})}]},
            {"measType": ("measName", "RRU.PrbUsedDl"),
             "matchingCond": [{"matchingCondChoice": ("testCondInfo", {
                 "testType": ("cQI", "true"), "testExpr": "greaterthan",
                 "testValue": ("valueInt", 5)})}],
             "matchingUEidList": [{"ueID": UeId.du(3).to_asn()}]}],
        "granulPeriod": 1000})}
    data = kpm_encode("E2SM-KPM-IndicationMessage", raw)
    assert kpm_encode("E2SM-KPM-IndicationMessage", kpm_decode("E2SM-KPM-IndicationMessage",
                                                                data)) == data
    (report,) = decode_indication_message(data, HEADER)
    assert report.measurements["DRB.UEThpDl[fiveQI=9]"] == MeasValue.integer(11)
    assert report.value("RRU.PrbUsedDl[{testType=cQI:true,testExpr=greaterthan,"
                        "testValue=valueInt:5}]") == 2.5


def test_event_trigger_round_trip() -> None:
    data = encode_event_trigger(EventTrigger(1000))
    assert decode_event_trigger(data) == EventTrigger(1000)
    assert encode_event_trigger(decode_event_trigger(data)) == data
    with pytest.raises(E2EncodeError):
        encode_event_trigger(EventTrigger(0))  # reportingPeriod is 1..4294967295


@pytest.mark.parametrize("action", [
    ActionDefinition(KDRAN_MEASUREMENTS, 1000, CELL),
    ActionDefinition(KDRAN_MEASUREMENTS[:2], 500),
    ActionDefinition(KDRAN_MEASUREMENTS, 1000, CELL, ue_conditions=(
        UeCondition("cQI", "greaterthan", 3, logical_or=True),
        UeCondition("rSRP", "lessthan", -95.5), UeCondition("fiveQI", "present"))),
    ActionDefinition(("DRB.UEThpDl",), 100, ue_ids=(UeId.du(1), UeId.du(2))),
], ids=["format1-cell", "format1-node", "format4", "format5"])
def test_action_definition_round_trip(action: ActionDefinition) -> None:
    data = encode_action_definition(action)
    decoded = decode_action_definition(data)
    assert decoded == action
    assert encode_action_definition(decoded) == data


def test_action_definition_style_must_match_format() -> None:
    raw = kpm_decode("E2SM-KPM-ActionDefinition",
                     encode_action_definition(ActionDefinition(("a",), 10)))
    raw["ric-Style-Type"] = 3
    with pytest.raises(E2DecodeError, match="style 3"):
        decode_action_definition(kpm_encode("E2SM-KPM-ActionDefinition", raw))


def test_action_definition_format2_is_unsupported() -> None:
    raw = {"ric-Style-Type": 2, "actionDefinition-formats": ("actionDefinition-Format2", {
        "ueID": UeId.du(1).to_asn(),
        "subscriptInfo": {"measInfoList": [{"measType": ("measName", "a"), "labelInfoList": [
            {"measLabel": {"noLabel": "true"}}]}], "granulPeriod": 10}})}
    with pytest.raises(E2DecodeError, match="unsupported action definition format"):
        decode_action_definition(kpm_encode("E2SM-KPM-ActionDefinition", raw))


def test_ran_function_definition_round_trip() -> None:
    definition = RanFunctionDefinition(
        "ORAN-E2SM-KPM", "1.3.6.1.4.1.53148.1.3.2.2", "KPM Monitor", 1,
        (EventTriggerStyle(1, "Periodic Report", 1),),
        (ReportStyle(1, "E2 Node Measurement", 1, KDRAN_MEASUREMENTS, 1, 1),
         ReportStyle(4, "Common Condition-based, UE-level", 4, ("DRB.UEThpDl",), 1, 3)))
    data = encode_ran_function_definition(definition)
    decoded = decode_ran_function_definition(data)
    assert decoded == definition
    assert encode_ran_function_definition(decoded) == data
    assert decoded.offered_measurements() == frozenset(KDRAN_MEASUREMENTS)


def test_meas_value_kinds() -> None:
    assert MeasValue.of(3).kind is MeasKind.INTEGER
    assert MeasValue.of(-3).kind is MeasKind.REAL  # KPM integers are unsigned
    assert MeasValue.of(2**32).kind is MeasKind.REAL
    assert MeasValue.of(None).as_float() is None
    with pytest.raises(E2EncodeError):
        MeasValue.of(True)
    with pytest.raises(E2EncodeError):
        MeasValue.integer(-1)


def test_nr_cgi_text_and_bits() -> None:
    assert NrCgi.parse(str(CELL)) == CELL
    assert NrCgi("310410", 1).to_asn()[1]["pLMNIdentity"] == bytes.fromhex("130014")
    with pytest.raises(E2EncodeError):
        NrCgi("00101", 1 << 36)
