"""The fast E2 readers against the libraries: random valid messages built with the library
ENCODERS decode to the same raw values (pycrate's / asn1tools') and the same typed results on
both paths; the readers take every message of their subset and hand everything else back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from asn1tools.codecs.permitted_alphabet import PRINTABLE_STRING
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrate_asn1dir import E2AP

from xapp.e2 import (
    E2DecodeError,
    E2EncodeError,
    KpmHeader,
    KpmReport,
    MeasValue,
    RicIndication,
    RicRequestId,
    SubscriptionDeleteRequest,
    decode_e2ap,
    decode_indication,
    decode_indication_header,
    decode_indication_message,
    encode_e2ap,
    encode_indication_header,
    encode_indication_message,
    fast_kpm,
)
from xapp.e2.aper import Unhandled
from xapp.e2.e2ap import _aper_to_value
from xapp.e2.fast_e2ap import _SPECS, read_ric_indication
from xapp.e2.fast_kpm import read_indication_header, read_indication_message
from xapp.e2.kpm_asn import kpm_decode, kpm_encode
from xapp.e2.measurements import KDRAN_MEASUREMENTS

PUBLIC_F1_VECTOR = bytes.fromhex("080000000100000000002043514901200000")
HEADER = KpmHeader(datetime(2025, 6, 1, 12, 0, tzinfo=UTC))
MESSAGE_TYPE = "E2SM-KPM-IndicationMessage"
HEADER_TYPE = "E2SM-KPM-IndicationHeader"
U32 = 2**32 - 1
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def same(a: Any, b: Any) -> bool:
    """Equal values, told apart where ``==`` would not (int/bool/float, -0.0, list/tuple, order
    of dictionary keys) and with NaN equal to NaN: ``repr`` is exact for all of them."""
    return repr(a) == repr(b)


def outcome(decode: Callable[[], Any]) -> Any:
    """``("ok", repr(result))`` or ``("error", reason)``: what a caller of ``decode`` sees."""
    try:
        return ("ok", repr(decode()))
    except E2DecodeError as exc:
        return ("error", exc.reason)


def fast_or_none(reader: Callable[[bytes], Any], data: bytes) -> Any:
    try:
        return reader(data)
    except Unhandled:
        return None


# --------------------------------------------------------------------------- strategies

U32S = st.one_of(st.sampled_from([0, 1, 127, 128, 255, 256, 65535, 65536, 2**24 - 1, 2**24, U32]),
                 st.integers(0, U32))
REALS = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 5e-324, 2.2250738585072014e-308,
                                                 1.7976931348623157e308, -14.25, 1e300]))
NAMES = st.one_of(st.text(PRINTABLE_STRING, min_size=1, max_size=12),
                  st.text(PRINTABLE_STRING, min_size=60, max_size=150),
                  st.sampled_from(KDRAN_MEASUREMENTS))
MEAS_TYPES = st.one_of(NAMES.map(lambda n: ("measName", n)),
                       st.integers(1, 65536).map(lambda i: ("measID", i)))
PLAIN_LABELS = st.sampled_from([{"noLabel": "true"}, {}])
LABELLED = st.one_of(st.integers(0, 255).map(lambda q: {"fiveQI": q}),
                     st.just({"sUM": "true"}),
                     st.integers(0, 255).map(lambda q: {"noLabel": "true", "qCI": q}))
RECORD_ITEMS = st.one_of(U32S.map(lambda v: ("integer", v)), REALS.map(lambda v: ("real", v)),
                         st.just(("noValue", None)))
RAN_UE_ID = st.binary(min_size=8, max_size=8)
FAST_UE_IDS = st.one_of(
    st.builds(lambda i, ran: ("gNB-DU-UEID", {"gNB-CU-UE-F1AP-ID": i, **ran}), U32S,
              st.one_of(st.just({}), RAN_UE_ID.map(lambda r: {"ran-UEID": r}))),
    st.builds(lambda i, ran: ("gNB-CU-UP-UEID", {"gNB-CU-CP-UE-E1AP-ID": i, **ran}), U32S,
              st.one_of(st.just({}), RAN_UE_ID.map(lambda r: {"ran-UEID": r}))),
    U32S.map(lambda i: ("ng-eNB-DU-UEID", {"ng-eNB-CU-UE-W1AP-ID": i})))
GUAMI = {"pLMNIdentity": b"\x00\xf1\x10", "aMFRegionID": (b"\x80", 8),
         "aMFSetID": (b"\x00\x40", 10), "aMFPointer": (b"\x04", 6)}
LIBRARY_ONLY_UE_IDS = st.integers(0, 2**40 - 1).map(
    lambda i: ("gNB-UEID", {"amf-UE-NGAP-ID": i, "guami": GUAMI}))


@st.composite
def info_items(draw: st.DrawFn, labelled: bool) -> list[dict[str, Any]]:
    labels = st.one_of(PLAIN_LABELS, LABELLED) if labelled else PLAIN_LABELS
    items = draw(st.lists(MEAS_TYPES, min_size=1, max_size=8, unique=True))
    return [{"measType": t,
             "labelInfoList": [{"measLabel": label}
                               for label in draw(st.lists(labels, min_size=1, max_size=2))]}
            for t in items]


@st.composite
def format1(draw: st.DrawFn, labelled: bool = False) -> dict[str, Any]:
    """A Format 1 body; records as wide as the information list (rarely one wider)."""
    info = draw(info_items(labelled))
    width = sum(len(item["labelInfoList"]) for item in info)
    width += draw(st.sampled_from([0] * 9 + [1]))
    data = []
    for _ in range(draw(st.integers(1, 3))):
        item: dict[str, Any] = {"measRecord": draw(st.lists(RECORD_ITEMS, min_size=width,
                                                            max_size=width))}
        if draw(st.booleans()):
            item["incompleteFlag"] = "true"
        data.append(item)
    body: dict[str, Any] = {"measData": data}
    if draw(st.integers(0, 4)):
        body["measInfoList"] = info
    if draw(st.booleans()):
        body["granulPeriod"] = draw(st.one_of(st.sampled_from([1, 1000, U32]),
                                              st.integers(1, U32)))
    return body


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """The asn1tools value of an IndicationMessage: Format 1 or 3, sometimes with labels or UE
    ids the fast reader does not take."""
    labelled = draw(st.integers(0, 5)) == 0
    if draw(st.booleans()):
        return {"indicationMessage-formats": ("indicationMessage-Format1",
                                              draw(format1(labelled)))}
    ue_ids = st.one_of(FAST_UE_IDS, LIBRARY_ONLY_UE_IDS) if draw(st.integers(0, 6)) == 0 \
        else FAST_UE_IDS
    return {"indicationMessage-formats": ("indicationMessage-Format3", {"ueMeasReportList": [
        {"ueID": ue, "measReport": draw(format1(labelled))}
        for ue in draw(st.lists(ue_ids, min_size=1, max_size=3))]})}


def _bodies(raw: dict[str, Any]) -> list[dict[str, Any]]:
    kind, body = raw["indicationMessage-formats"]
    return [body] if kind.endswith("Format1") else [r["measReport"]
                                                    for r in body["ueMeasReportList"]]


def in_fast_subset(raw: dict[str, Any]) -> bool:
    """Whether the fast reader must take this message: no label but ``noLabel``, no UE id the
    reader leaves to asn1tools."""
    kind, body = raw["indicationMessage-formats"]
    if kind.endswith("Format3") and any(r["ueID"][0] == "gNB-UEID"
                                        for r in body["ueMeasReportList"]):
        return False
    return not any(set(label["measLabel"]) - {"noLabel"} for b in _bodies(raw)
                   for item in b.get("measInfoList", ()) for label in item["labelInfoList"])


HEADERS = st.builds(
    lambda stamp, extra: {"indicationHeader-formats": ("indicationHeader-Format1",
                                                       {"colletStartTime": stamp, **extra})},
    st.binary(min_size=8, max_size=8),
    st.fixed_dictionaries({}, optional={
        "fileFormatversion": st.text(PRINTABLE_STRING, max_size=15),
        "senderName": st.one_of(st.text(PRINTABLE_STRING, max_size=20),
                                st.text(PRINTABLE_STRING, min_size=250, max_size=400)),
        "senderType": st.text(PRINTABLE_STRING, max_size=8),
        "vendorName": st.text(PRINTABLE_STRING, max_size=32)}))
INDICATIONS = st.builds(
    lambda req, inst, fn, act, sn, kind, cpid, header, message: RicIndication(
        RicRequestId(req, inst), fn, act, header, message, sn, kind, cpid),
    st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 4095), st.integers(0, 255),
    st.one_of(st.none(), st.integers(0, 65535)), st.sampled_from(["report", "insert"]),
    st.one_of(st.none(), st.binary(max_size=200)),
    st.one_of(st.binary(max_size=40), st.binary(min_size=120, max_size=300)),
    st.one_of(st.binary(max_size=100), st.binary(min_size=128, max_size=2000)))


# --------------------------------------------------------------------------- properties


@PROPERTY
@given(raw=messages())
def test_message_raw_values_match_asn1tools(raw: dict[str, Any]) -> None:
    data = kpm_encode(MESSAGE_TYPE, raw)
    fast_kpm.clear_cache()
    for _ in range(2):  # cold, then with the tail cached
        fast = fast_or_none(read_indication_message, data)
        assert (fast is not None) == in_fast_subset(raw)
        if fast is not None:
            assert same(fast, kpm_decode(MESSAGE_TYPE, data))


@PROPERTY
@given(raw=messages(), cell=st.sampled_from([None, "00101-000000001"]))
def test_message_typed_results_match(raw: dict[str, Any], cell: str | None) -> None:
    data = kpm_encode(MESSAGE_TYPE, raw)
    names = subscribed_names(raw)
    results = [outcome(lambda fast=fast: decode_indication_message(
        data, HEADER, cell_id=cell, measurement_names=names, fast=fast)) for fast in (True, False)]
    assert results[0] == results[1]


def subscribed_names(raw: dict[str, Any]) -> list[str]:
    """Names for a message without information list: as many as its first record is wide."""
    return [f"m{i}" for i in range(len(_bodies(raw)[0]["measData"][0]["measRecord"]))]


@PROPERTY
@given(raw=HEADERS)
def test_header_raw_and_typed_match(raw: dict[str, Any]) -> None:
    data = kpm_encode(HEADER_TYPE, raw)
    assert same(read_indication_header(data), kpm_decode(HEADER_TYPE, data))
    assert (outcome(lambda: decode_indication_header(data, fast=True))
            == outcome(lambda: decode_indication_header(data, fast=False)))


@PROPERTY
@given(message=INDICATIONS)
def test_e2ap_raw_values_match_pycrate(message: RicIndication) -> None:
    data = encode_e2ap(message)
    assert same(read_ric_indication(data), _aper_to_value(data, False))
    assert decode_e2ap(data, fast=True) == decode_e2ap(data, fast=False) == message


@PROPERTY
@given(header=HEADERS, raw=messages(), sn=st.one_of(st.none(), st.integers(0, 65535)))
def test_whole_indications_match(header: dict[str, Any], raw: dict[str, Any],
                                 sn: int | None) -> None:
    payload = encode_e2ap(RicIndication(
        RicRequestId(1, 2), 3, 4, kpm_encode(HEADER_TYPE, header), kpm_encode(MESSAGE_TYPE, raw),
        sn))
    names = subscribed_names(raw)
    results = [outcome(lambda fast=fast: decode_indication(
        payload, cell_id="00101-000000001", measurement_names=names, fast=fast))
               for fast in (True, False)]
    assert results[0] == results[1]


@PROPERTY
@given(values=st.lists(st.one_of(st.none(), st.integers(-2**40, 2**40), st.floats()),
                       min_size=1, max_size=8),
       incomplete=st.booleans(), granularity=st.one_of(st.none(), st.integers(1, U32)))
def test_typed_reports_round_trip_on_both_paths(values: list[int | float | None],
                                                incomplete: bool,
                                                granularity: int | None) -> None:
    """From typed values (negative and >32-bit integers become reals) through the encoders."""
    measurements = {f"VS.Test.{i}": MeasValue.of(v) for i, v in enumerate(values)}
    report = KpmReport(HEADER.collection_start, granularity, measurements, incomplete)
    data = encode_indication_message([report])
    (fast,), (library,) = (decode_indication_message(data, HEADER, fast=f) for f in (True, False))
    assert same(fast, library)
    assert (fast.granularity_period_ms, fast.incomplete) == (granularity, incomplete)
    assert [(k, v.kind) for k, v in fast.measurements.items()] == [
        (k, v.kind) for k, v in measurements.items()]


# --------------------------------------------------------------------------- examples


def test_public_vector_on_both_paths() -> None:
    raw = read_indication_message(PUBLIC_F1_VECTOR)
    assert same(raw, kpm_decode(MESSAGE_TYPE, PUBLIC_F1_VECTOR))
    assert raw["indicationMessage-formats"][1]["measInfoList"][0]["measType"] == ("measName",
                                                                                  "CQI")
    fast, library = (decode_indication_message(PUBLIC_F1_VECTOR, HEADER, fast=f)
                     for f in (True, False))
    assert fast == library
    assert fast[0].measurements == {"CQI": MeasValue.integer(0)}


def test_records_wider_than_127_values_use_two_octet_lengths() -> None:
    """A record of 130 values (and a label list of 130) takes the two-octet length form."""
    names = [f"VS.Wide.{i:03d}" for i in range(130)]
    report = KpmReport(HEADER.collection_start, 100,
                       {name: MeasValue.of(i if i % 3 else i / 4) for i, name in enumerate(names)})
    data = encode_indication_message([report])
    assert same(read_indication_message(data), kpm_decode(MESSAGE_TYPE, data))
    labels = kpm_encode(MESSAGE_TYPE, {"indicationMessage-formats": (
        "indicationMessage-Format1", {
            "measData": [{"measRecord": [("integer", i) for i in range(130)]}],
            "measInfoList": [{"measType": ("measID", 7),
                              "labelInfoList": [{"measLabel": {}}] * 130}]})})
    assert same(read_indication_message(labels), kpm_decode(MESSAGE_TYPE, labels))


def test_negative_integer_is_not_encodable() -> None:
    """``integer`` is INTEGER (0..4294967295): -1 and 2**32 are refused by the encoder, so the
    readers never see them; MeasValue.of makes them reals."""
    for bad in (-1, 2**32):
        raw = {"indicationMessage-formats": ("indicationMessage-Format1", {
            "measData": [{"measRecord": [("integer", bad)]}]})}
        with pytest.raises(E2EncodeError):
            kpm_encode(MESSAGE_TYPE, raw)
    assert MeasValue.of(-1) == MeasValue.real(-1.0)


def _cell_message(value: float) -> bytes:
    return encode_indication_message([KpmReport(
        HEADER.collection_start, 1000,
        {name: MeasValue.of(value + i) for i, name in enumerate(KDRAN_MEASUREMENTS)})])


def test_tail_cache_reuses_the_information_list_and_returns_new_objects() -> None:
    fast_kpm.clear_cache()
    first = read_indication_message(_cell_message(1.5))
    assert len(fast_kpm._TAILS) == 1
    first["indicationMessage-formats"][1]["measInfoList"].clear()  # a careless caller
    second = read_indication_message(_cell_message(7.25))
    assert len(fast_kpm._TAILS) == 1
    body = second["indicationMessage-formats"][1]
    assert [i["measType"][1] for i in body["measInfoList"]] == list(KDRAN_MEASUREMENTS)
    assert body["measData"][0]["measRecord"][0] == ("real", 7.25)
    assert same(second, kpm_decode(MESSAGE_TYPE, _cell_message(7.25)))


def test_tail_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_kpm.clear_cache()
    monkeypatch.setattr(fast_kpm, "TAIL_CACHE_SIZE", 3)
    for n in range(6):
        read_indication_message(encode_indication_message([KpmReport(
            HEADER.collection_start, 10 + n, {"a": MeasValue.integer(n)})]))
    assert len(fast_kpm._TAILS) == 3
    monkeypatch.setattr(fast_kpm, "TAIL_CACHE_MAX_OCTETS", 8)
    fast_kpm.clear_cache()
    read_indication_message(_cell_message(2.0))
    assert not fast_kpm._TAILS


def _indication(message: bytes = b"\x01", call_process_id: bytes | None = None) -> bytes:
    return encode_e2ap(RicIndication(RicRequestId(1001, 7), 2, 1, b"\x00" * 9, message, 5,
                                     call_process_id=call_process_id))


def _patched(data: bytes, at: int, old: bytes, new: bytes) -> bytes:
    assert data[at:at + len(old)] == old
    return data[:at] + new + data[at + len(old):]


@pytest.mark.parametrize("mangle", [
    lambda d: d + b"\x00",  # trailing octet
    lambda d: _patched(d, 0, b"\x00", b"\x01"),  # non-zero padding after the CHOICE index
    lambda d: _patched(d, 2, b"\x40", b"\x00"),  # procedure criticality reject
    lambda d: _patched(d, 4, b"\x00", b"\x80"),  # RICindication extension bit
    lambda d: _patched(d, 7, b"\x00\x1d\x00", b"\x00\x1d\x40"),  # RICrequestID criticality
    lambda d: _patched(d, 7, b"\x00\x1d", b"\x00\x63"),  # an IE id not of RICindication
], ids=["trailing", "padding", "procedure-criticality", "extension", "ie-criticality",
        "unknown-ie"])
def test_e2ap_outside_the_subset_goes_to_pycrate(mangle: Callable[[bytes], bytes]) -> None:
    data = mangle(_indication())
    with pytest.raises(Unhandled):
        read_ric_indication(data)
    assert (outcome(lambda: decode_e2ap(data, fast=True))
            == outcome(lambda: decode_e2ap(data, fast=False)))


def test_e2ap_non_minimal_length_goes_to_pycrate() -> None:
    """The message IE's one-octet open type length re-encoded in the two-octet form."""
    data = _indication(b"\x07")
    assert data.endswith(bytes.fromhex("001a00020107")) and data[3] == len(data) - 4
    longer = _patched(data, len(data) - 3, b"\x02", b"\x80\x02")
    longer = _patched(longer, 3, data[3:4], bytes([data[3] + 1]))
    with pytest.raises(Unhandled):
        read_ric_indication(longer)
    assert (outcome(lambda: decode_e2ap(longer, fast=True))
            == outcome(lambda: decode_e2ap(longer, fast=False)))


def test_fragmented_octet_strings_go_to_pycrate() -> None:
    data = _indication(b"\x05" * 20000)
    with pytest.raises(Unhandled):
        read_ric_indication(data)
    assert decode_e2ap(data, fast=True) == decode_e2ap(data, fast=False)


def test_the_e2ap_reader_takes_every_ie_of_ricindication() -> None:
    """IE ids, types and bounds come from pycrate's module; all of RICindication-IEs are read
    (none silently left to pycrate), with the criticality the IE set gives."""
    table = {e["id"]: (e["Value"]._typeref.called[1], e["criticality"])
             for e in E2AP.E2AP_PDU_Contents.RICindication_IEs._val.root}
    assert {ie_id: (spec.type_name, ("reject", "ignore", "notify")[spec.criticality])
            for ie_id, spec in _SPECS.items()} == table


def test_other_e2ap_messages_go_to_pycrate() -> None:
    data = encode_e2ap(SubscriptionDeleteRequest(RicRequestId(1, 2), 3))
    with pytest.raises(Unhandled):
        read_ric_indication(data)
    assert decode_e2ap(data, fast=True) == SubscriptionDeleteRequest(RicRequestId(1, 2), 3)


def test_format2_and_extensions_go_to_asn1tools() -> None:
    format2 = kpm_encode(MESSAGE_TYPE, {"indicationMessage-formats": (
        "indicationMessage-Format2", {
            "measData": [{"measRecord": [("integer", 11)]}],
            "measCondUEidList": [{"measType": ("measName", "DRB.UEThpDl"), "matchingCond": [
                {"matchingCondChoice": ("measLabel", {"fiveQI": 9})}]}]})})
    extended = bytes([PUBLIC_F1_VECTOR[0] | 0x10]) + PUBLIC_F1_VECTOR[1:]  # Format1 ext bit
    for data in (format2, extended):
        with pytest.raises(Unhandled):
            read_indication_message(data)
        assert (outcome(lambda data=data: decode_indication_message(data, HEADER, fast=True))
                == outcome(lambda data=data: decode_indication_message(data, HEADER,
                                                                       fast=False)))


def test_header_strings_beyond_their_root_size_go_to_asn1tools() -> None:
    """senderType is PrintableString (SIZE(0..8, ...)): asn1tools reads a 4-bit size up to 15
    and accepts it (extensible size constraints are not checked); the fast reader hands it
    back."""
    data = encode_indication_header(KpmHeader(HEADER.collection_start, sender_type="DU"))
    assert data[0] & 0x04  # senderType present (presence bits follow 3 extension bits)
    size_at = 9  # after the presence byte and the 8-octet timestamp: ext bit, 4-bit size
    assert data[size_at] >> 3 == 2
    longer = data[:size_at] + bytes([12 << 3]) + b"DU" + b"x" * 10
    with pytest.raises(Unhandled):
        read_indication_header(longer)
    assert decode_indication_header(longer, fast=False).sender_type == "DU" + "x" * 10
    assert decode_indication_header(longer, fast=True).sender_type == "DU" + "x" * 10
