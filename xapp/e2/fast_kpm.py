"""Fast readers for the E2SM-KPM v03.00 containers of every RICindication.

``read_indication_header`` and ``read_indication_message`` return exactly the value asn1tools'
aligned-PER decoder returns for the same bytes (same dictionaries, tuples, strings, bytes,
ints and floats), for the subset they handle:

- IndicationHeader Format 1 with any of its optional strings;
- IndicationMessage Format 1, and Format 3 for UEs identified by ``gNB-DU-UEID``,
  ``gNB-CU-UP-UEID`` or ``ng-eNB-DU-UEID``;
- measurement types by name or id, with ``noLabel`` (or an empty label) only;
- integer, real (binary base 2 and the special values, via asn1tools' own REAL decoder) and
  noValue records, with or without ``incompleteFlag``.

Anything else (a set extension bit, a label, another format or UE id alternative, a value out
of its root range, non-canonical or malformed bytes) raises :class:`Unhandled`, and the caller
decodes with asn1tools, the reference. The layouts below follow asn1tools' PER codec for the
types of ``asn/e2sm_kpm_v03.00.asn``; the property tests check both paths agree.

A Format 1 message ends with its measurement information list (and granularity), which an E2
node repeats unchanged every period of a subscription: that tail is decoded once per distinct
byte string and then taken from a bounded cache (the values returned are new objects each call).
"""

from __future__ import annotations

import threading
from typing import Any, Final

from asn1tools.codecs.ber import decode_real
from asn1tools.codecs.permitted_alphabet import PRINTABLE_STRING

from xapp.e2.aper import AperReader, Unhandled

_PRINTABLE: Final = PRINTABLE_STRING.encode("ascii")
_MAX_U32: Final = 0xFFFFFFFF
_MAX_LIST: Final = 65535
"""maxnoofMeasurementInfo, maxnoofMeasurementRecord and maxnoofUEMeasReport."""
_MEAS_NAME_MAX: Final = 150
_NO_LABEL_ONLY: Final = 1 << 20
"""MeasurementLabel presence bits (21 root OPTIONALs) with only ``noLabel`` set."""
_HEADER_STRINGS: Final = (("fileFormatversion", 15), ("senderName", 400),
                          ("senderType", 8), ("vendorName", 32))
"""IndicationHeader Format 1 optional PrintableStrings, in order, with their size upper bound."""
_UE_ID_FIELDS: Final = {1: ("gNB-DU-UEID", "gNB-CU-UE-F1AP-ID", True),
                        2: ("gNB-CU-UP-UEID", "gNB-CU-CP-UE-E1AP-ID", True),
                        4: ("ng-eNB-DU-UEID", "ng-eNB-CU-UE-W1AP-ID", False)}
"""UEID root index -> (alternative, its id field, whether it has the optional ``ran-UEID``)."""


def _printable(raw: bytes) -> str:
    if raw.translate(None, _PRINTABLE):
        raise Unhandled("not a PrintableString")
    return raw.decode("ascii")


def _u32(r: AperReader) -> int:
    """INTEGER (0..4294967295): 2-bit octet count - 1, then the octets (aligned)."""
    return r.minimal_uint(r.bits(2) + 1)


def _list_count(r: AperReader) -> int:
    """SEQUENCE (SIZE(1..65535)) OF: count - 1 in 16 aligned bits."""
    count = r.uint(2) + 1
    if count > _MAX_LIST:
        raise Unhandled("list size out of range")
    return count


def _unbound_count(r: AperReader) -> int:
    """SEQUENCE (SIZE(1..2147483647)) OF: a length determinant, at least 1."""
    count = r.length()
    if count == 0:
        raise Unhandled("empty list")
    return count


# --------------------------------------------------------------------------- header


def _header_string(r: AperReader, upper: int) -> str:
    """PrintableString (SIZE(0..upper, ...)), root size only."""
    if r.bit():
        raise Unhandled("string size extension")
    size = r.uint(2) if upper > 255 else r.bits(upper.bit_length())
    if size > upper:
        raise Unhandled("string size out of range")
    return _printable(r.octets(size)) if size else ""


def read_indication_header(data: bytes) -> dict[str, Any]:
    """E2SM-KPM-IndicationHeader (Format 1) -> the asn1tools value."""
    r = AperReader(data)
    head = r.bits(7)  # SEQUENCE ext, CHOICE ext, Format1 ext, 4 OPTIONAL presence bits
    if head >> 4:
        raise Unhandled("extension")
    body: dict[str, Any] = {"colletStartTime": r.octets(8)}
    for shift, (name, upper) in zip((3, 2, 1, 0), _HEADER_STRINGS, strict=True):
        if head >> shift & 1:
            body[name] = _header_string(r, upper)
    r.finish()
    return {"indicationHeader-formats": ("indicationHeader-Format1", body)}


# --------------------------------------------------------------------------- message


def _record(r: AperReader) -> list[tuple[str, Any]]:
    """MeasurementRecord: integer / real / noValue items."""
    items: list[tuple[str, Any]] = []
    for _ in range(_unbound_count(r)):
        choice = r.bits(3)  # ext bit, 2-bit root index
        if choice == 0:
            items.append(("integer", _u32(r)))
        elif choice == 1:
            octets = r.octets(r.length())
            try:
                items.append(("real", decode_real(bytearray(octets))))
            except Exception as exc:  # asn1tools refuses it (or overflows): let it say why
                raise Unhandled("REAL form") from exc
        elif choice == 2:
            items.append(("noValue", None))
        else:
            raise Unhandled("record alternative")
    return items


def _meas_data(r: AperReader) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = []
    for _ in range(_list_count(r)):
        head = r.bits(2)  # ext, incompleteFlag presence
        if head & 2:
            raise Unhandled("extension")
        item: dict[str, Any] = {"measRecord": _record(r)}
        if head:
            if r.bit():  # ENUMERATED {true, ...}: the extension bit, no root bits
                raise Unhandled("incompleteFlag extension")
            item["incompleteFlag"] = "true"
        data.append(item)
    return data


def _meas_type(r: AperReader) -> tuple[str, Any]:
    head = r.bits(4)  # item ext, CHOICE ext, CHOICE index, size/value ext
    if head & 0b1101:
        raise Unhandled("extension")
    if head & 0b10:
        return ("measID", r.uint(2) + 1)  # INTEGER (1..65536, ...)
    size = r.bits(8) + 1  # PrintableString (SIZE(1..150, ...))
    if size > _MEAS_NAME_MAX:
        raise Unhandled("name size out of range")
    return ("measName", _printable(r.octets(size)))


def _labels(r: AperReader) -> tuple[bool, ...]:
    """LabelInfoList of ``noLabel`` (True) or empty (False) labels."""
    labels: list[bool] = []
    for _ in range(_unbound_count(r)):
        head = r.bits(23)  # item ext, MeasurementLabel ext, 21 presence bits
        if head == _NO_LABEL_ONLY:
            if r.bit():
                raise Unhandled("noLabel extension")
            labels.append(True)
        elif head == 0:
            labels.append(False)
        else:
            raise Unhandled("label")
    return tuple(labels)


_InfoItems = tuple[tuple[tuple[str, Any], tuple[bool, ...]], ...]
"""A MeasurementInfoList, immutable: (measType, noLabel flag per label) per item."""


def _info_items(r: AperReader) -> _InfoItems:
    return tuple((_meas_type(r), _labels(r)) for _ in range(_list_count(r)))


def _info_list(items: _InfoItems) -> list[dict[str, Any]]:
    """The asn1tools value of a MeasurementInfoList (new objects on every call)."""
    return [{"measType": meas_type,
             "labelInfoList": [{"measLabel": {"noLabel": "true"} if no_label else {}}
                               for no_label in labels]}
            for meas_type, labels in items]


def _granularity(r: AperReader) -> int:
    granularity = _u32(r) + 1  # GranularityPeriod INTEGER (1..4294967295)
    if granularity > _MAX_U32:
        raise Unhandled("granularity out of range")
    return granularity


_Tail = tuple[_InfoItems, int | None]
TAIL_CACHE_SIZE: Final = 1024
"""Distinct Format 1 tails (measInfoList + granulPeriod) remembered, oldest dropped first."""
TAIL_CACHE_MAX_OCTETS: Final = 4096
"""Longest tail remembered, octets (64 measurement names of up to 55 characters fit): the cache
holds at most ~4 MiB whatever E2 nodes send."""
_TAILS: dict[tuple[bool, bytes], _Tail] = {}
_TAILS_LOCK: Final = threading.Lock()


def _tail(r: AperReader, has_granularity: bool) -> _Tail:
    """measInfoList and granulPeriod when they end the message (a top-level Format 1).

    Their decode depends only on the octets from the aligned start of the list to the end of
    the message, which an E2 node repeats every period of a subscription: decoded tails are
    kept by those exact octets (and whether a granularity follows)."""
    r.align()
    key = (has_granularity, r.data[r.pos >> 3:])
    tail = _TAILS.get(key)
    if tail is None:
        tail = (_info_items(r), _granularity(r) if has_granularity else None)
        r.finish()
        if len(key[1]) <= TAIL_CACHE_MAX_OCTETS:
            with _TAILS_LOCK:
                if len(_TAILS) >= TAIL_CACHE_SIZE:
                    del _TAILS[next(iter(_TAILS))]
                _TAILS[key] = tail
    r.pos = r.end
    return tail


def _format1(r: AperReader, *, ends_message: bool = False) -> dict[str, Any]:
    head = r.bits(3)  # ext, measInfoList and granulPeriod presence
    if head & 4:
        raise Unhandled("extension")
    body: dict[str, Any] = {"measData": _meas_data(r)}
    items: _InfoItems | None
    if ends_message and head & 2:
        items, granularity = _tail(r, bool(head & 1))
    else:
        items = _info_items(r) if head & 2 else None
        granularity = _granularity(r) if head & 1 else None
    if items is not None:
        body["measInfoList"] = _info_list(items)
    if granularity is not None:
        body["granulPeriod"] = granularity
    return body


def clear_cache() -> None:
    """Forget the decoded Format 1 tails (for cold-path measurements and tests)."""
    with _TAILS_LOCK:
        _TAILS.clear()


def _ue_id(r: AperReader) -> tuple[str, dict[str, Any]]:
    head = r.bits(4)  # CHOICE ext, 3-bit root index
    spec = _UE_ID_FIELDS.get(head)
    if spec is None:
        raise Unhandled("UE id alternative")
    kind, field, has_ran_ue_id = spec
    flags = r.bits(2 if has_ran_ue_id else 1)  # ext [, ran-UEID presence]
    if flags >> (1 if has_ran_ue_id else 0):
        raise Unhandled("extension")
    value: dict[str, Any] = {field: _u32(r)}
    if has_ran_ue_id and flags & 1:
        value["ran-UEID"] = r.octets(8)
    return (kind, value)


def _format3(r: AperReader) -> dict[str, Any]:
    if r.bit():
        raise Unhandled("extension")
    reports = []
    for _ in range(_list_count(r)):
        if r.bit():
            raise Unhandled("extension")
        reports.append({"ueID": _ue_id(r), "measReport": _format1(r)})
    return {"ueMeasReportList": reports}


def read_indication_message(data: bytes) -> dict[str, Any]:
    """E2SM-KPM-IndicationMessage (Format 1 or 3) -> the asn1tools value."""
    r = AperReader(data)
    head = r.bits(2)  # SEQUENCE ext, CHOICE ext
    if head == 0:
        if r.bit():  # root index 1: Format2
            raise Unhandled("message format")
        value = ("indicationMessage-Format1", _format1(r, ends_message=True))
    elif head == 1:  # extension addition 0 (Format3) in an open type
        if r.bits(7):  # normally small number: 0 + 6-bit index
            raise Unhandled("message format")
        size = r.length()
        stop = r.pos + (size << 3)
        value = ("indicationMessage-Format3", _format3(r))
        r.align()
        if r.pos != stop:
            raise Unhandled("open type length")
    else:
        raise Unhandled("message format")
    r.finish()
    return {"indicationMessage-formats": value}
