"""E2SM-KPM v03.00 containers <-> typed values (:mod:`xapp.e2.kpm_model`).

Each E2SM container travels inside an E2AP OCTET STRING: the event trigger and action definition
in a RICsubscriptionRequest, the indication header and message in a RICindication, the RAN
function definition in E2 setup / service update. Encoders raise :class:`E2EncodeError`; decoders
raise only :class:`E2DecodeError` (malformed, truncated or unsupported input).

Supported: EventTriggerDefinition Format 1; ActionDefinition Formats 1, 4, 5 (encode and decode);
IndicationHeader Format 1; IndicationMessage Formats 1 and 3 (encode and decode) and 2 (decode);
RANfunction-Description.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from xapp.e2.boundary import decode_boundary
from xapp.e2.decoder_path import use_fast
from xapp.e2.errors import E2DecodeError, E2EncodeError
from xapp.e2.fast_kpm import read_indication_header, read_indication_message
from xapp.e2.ids import NrCgi, UeId, cgi_to_string
from xapp.e2.kpm_asn import kpm_decode, kpm_encode
from xapp.e2.kpm_model import (
    ActionDefinition,
    EventTrigger,
    EventTriggerStyle,
    KpmHeader,
    KpmReport,
    MeasKind,
    MeasValue,
    RanFunctionDefinition,
    ReportStyle,
    UeCondition,
)
from xapp.e2.ntp import datetime_to_ntp, ntp_to_datetime

_NO_LABEL: Final = {"measLabel": {"noLabel": "true"}}
_MEAS_ID_PREFIX: Final = "#"
_F1, _F4, _F5 = ("actionDefinition-Format1", "actionDefinition-Format4",
                 "actionDefinition-Format5")
_ACTION_FORMATS: Final = {_F1: 1, _F4: 4, _F5: 5}

# --------------------------------------------------------------------------- event trigger


def encode_event_trigger(trigger: EventTrigger) -> bytes:
    """EventTriggerDefinition Format 1 (reporting period, ms)."""
    body = {"reportingPeriod": trigger.reporting_period_ms}
    return kpm_encode("E2SM-KPM-EventTriggerDefinition",
                      {"eventDefinition-formats": ("eventDefinition-Format1", body)})


@decode_boundary("event trigger definition")
def decode_event_trigger(data: bytes) -> EventTrigger:
    """Decode an EventTriggerDefinition; only Format 1 exists in v03.00."""
    kind, body = kpm_decode("E2SM-KPM-EventTriggerDefinition", data)["eventDefinition-formats"]
    if kind != "eventDefinition-Format1":
        raise E2DecodeError(f"unsupported event trigger format {kind!r}")
    return EventTrigger(reporting_period_ms=body["reportingPeriod"])


# --------------------------------------------------------------------------- measurement types


def _meas_type(key: str) -> tuple[str, Any]:
    """A plain measurement key -> ``MeasurementType`` (``#<n>`` keys are measurement ids)."""
    if key.startswith(_MEAS_ID_PREFIX) and key[1:].isdigit():
        return ("measID", int(key[1:]))
    if "[" in key:
        raise E2EncodeError(f"encoding labelled measurements is not supported: {key!r}")
    return ("measName", key)


def _type_key(meas_type: tuple[str, Any]) -> str:
    kind, value = meas_type
    return str(value) if kind == "measName" else f"{_MEAS_ID_PREFIX}{value}"


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return ":".join(_render(v) for v in value)
    return str(value)


def _label_key(base: str, label: Mapping[str, Any]) -> str:
    """``name`` for noLabel / empty labels, else ``name[field=value,...]``."""
    parts = [f"{k}={_render(v)}" for k, v in label.items() if k != "noLabel"]
    return f"{base}[{','.join(parts)}]" if parts else base


def _info_keys(info_list: Iterable[Mapping[str, Any]]) -> list[str]:
    """One key per (measurement, label) pair, in measurement-record order."""
    keys: list[str] = []
    for item in info_list:
        base = _type_key(item["measType"])
        keys.extend(_label_key(base, label["measLabel"]) for label in item["labelInfoList"])
    if len(set(keys)) != len(keys):
        raise E2DecodeError("measurement information list repeats a measurement/label pair")
    return keys


def _info_list(keys: Iterable[str]) -> list[dict[str, Any]]:
    return [{"measType": _meas_type(k), "labelInfoList": [_NO_LABEL]} for k in keys]


def _plain_names(info_list: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Measurement names of an action definition; only named, unlabelled measurements."""
    names = []
    for item in info_list:
        kind, value = item["measType"]
        labels = [label["measLabel"] for label in item["labelInfoList"]]
        if kind != "measName":
            raise E2DecodeError("subscribing by measurement id is not supported")
        if any(set(label) - {"noLabel"} for label in labels):
            raise E2DecodeError(f"label filters are not supported (measurement {value!r})")
        names.append(value)
    return tuple(names)


# --------------------------------------------------------------------------- action definition


def _format1_asn(names: Sequence[str], granularity_ms: int, cell: NrCgi | None) -> dict[str, Any]:
    body: dict[str, Any] = {"measInfoList": _info_list(names), "granulPeriod": granularity_ms}
    if cell is not None:
        body["cellGlobalID"] = cell.to_asn()
    return body


def _test_value(value: int | float | bool | str) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("valueBool", value)
    if isinstance(value, int):
        return ("valueInt", value)
    if isinstance(value, float):
        return ("valueReal", value)
    return ("valuePrtS", value)


def _condition_asn(cond: UeCondition) -> dict[str, Any]:
    info: dict[str, Any] = {"testType": (cond.test, "true")}
    if cond.expression is not None:
        info["testExpr"] = cond.expression
    if cond.value is not None:
        info["testValue"] = _test_value(cond.value)
    item: dict[str, Any] = {"testCondInfo": info}
    if cond.logical_or:
        item["logicalOR"] = "true"
    return item


def _condition(item: Mapping[str, Any]) -> UeCondition:
    info = item["testCondInfo"]
    value = info.get("testValue")
    if value is not None and value[0] in ("valueBitS", "valueOctS"):
        raise E2DecodeError(f"UE condition value {value[0]!r} is not supported")
    return UeCondition(test=info["testType"][0], expression=info.get("testExpr"),
                       value=None if value is None else value[1],
                       logical_or="logicalOR" in item)


def encode_action_definition(action: ActionDefinition) -> bytes:
    """ActionDefinition Format 1, 4 or 5 (see :class:`ActionDefinition`); RIC style = format."""
    sub = _format1_asn(action.measurement_names, action.granularity_period_ms, action.cell)
    if action.format == 4:
        choice = (_F4, {"matchingUeCondList": [_condition_asn(c) for c in action.ue_conditions],
                        "subscriptionInfo": sub})
    elif action.format == 5:
        choice = (_F5, {"matchingUEidList": [{"ueID": ue.to_asn()} for ue in action.ue_ids],
                        "subscriptionInfo": sub})
    else:
        choice = (_F1, sub)
    return kpm_encode("E2SM-KPM-ActionDefinition",
                      {"ric-Style-Type": action.format, "actionDefinition-formats": choice})


def _nr_cell(cgi: tuple[str, dict[str, Any]] | None) -> NrCgi | None:
    if cgi is None:
        return None
    if cgi[0] != "nR-CGI":
        raise E2DecodeError(f"only NR cells are supported, got {cgi[0]!r}")
    return NrCgi.parse(cgi_to_string(cgi))


@decode_boundary("action definition")
def decode_action_definition(data: bytes) -> ActionDefinition:
    """Decode an ActionDefinition; Formats 2 and 3 and label filters are unsupported."""
    raw = kpm_decode("E2SM-KPM-ActionDefinition", data)
    kind, body = raw["actionDefinition-formats"]
    if kind not in _ACTION_FORMATS:
        raise E2DecodeError(f"unsupported action definition format {kind!r}")
    if raw["ric-Style-Type"] != _ACTION_FORMATS[kind]:
        raise E2DecodeError(f"RIC style {raw['ric-Style-Type']} does not match {kind}")
    sub = body if kind == _F1 else body["subscriptionInfo"]
    if "distMeasBinRangeInfo" in sub:
        raise E2DecodeError("distribution measurements are not supported")
    return ActionDefinition(
        measurement_names=_plain_names(sub["measInfoList"]),
        granularity_period_ms=sub["granulPeriod"],
        cell=_nr_cell(sub.get("cellGlobalID")),
        ue_conditions=tuple(_condition(c) for c in body.get("matchingUeCondList", ())),
        ue_ids=tuple(UeId.from_asn(u["ueID"]) for u in body.get("matchingUEidList", ())),
    )


# --------------------------------------------------------------------------- indication header

_HEADER_FIELDS: Final = (("fileFormatversion", "file_format_version"),
                         ("senderName", "sender_name"), ("senderType", "sender_type"),
                         ("vendorName", "vendor_name"))


def encode_indication_header(header: KpmHeader) -> bytes:
    """IndicationHeader Format 1 (collection start as a 64-bit NTP timestamp)."""
    body: dict[str, Any] = {"colletStartTime": datetime_to_ntp(header.collection_start)}
    for asn_name, attr in _HEADER_FIELDS:
        if getattr(header, attr) is not None:
            body[asn_name] = getattr(header, attr)
    return kpm_encode("E2SM-KPM-IndicationHeader",
                      {"indicationHeader-formats": ("indicationHeader-Format1", body)})


@decode_boundary("indication header")
def decode_indication_header(data: bytes, *, fast: bool | None = None) -> KpmHeader:
    """Decode an IndicationHeader (Format 1, the only one in v03.00). ``fast`` (``None``: the
    process default): read it with :mod:`xapp.e2.fast_kpm` when it can, else with asn1tools."""
    raw = kpm_decode("E2SM-KPM-IndicationHeader", data,
                     read_indication_header if use_fast(fast) else None)
    kind, body = raw["indicationHeader-formats"]
    if kind != "indicationHeader-Format1":
        raise E2DecodeError(f"unsupported indication header format {kind!r}")
    extras = {attr: body.get(asn_name) for asn_name, attr in _HEADER_FIELDS}
    return KpmHeader(collection_start=ntp_to_datetime(body["colletStartTime"]), **extras)


# --------------------------------------------------------------------------- indication message


def _record_item(value: MeasValue) -> tuple[str, Any]:
    if value.kind is MeasKind.NO_VALUE:
        return ("noValue", None)
    return (value.kind.value, value.value)


def _meas_value(item: tuple[str, Any]) -> MeasValue:
    kind, value = item
    if kind == "integer":
        return MeasValue(MeasKind.INTEGER, value)
    if kind == "real":
        return MeasValue(MeasKind.REAL, value)
    if kind == "noValue":
        return MeasValue(MeasKind.NO_VALUE)
    raise E2DecodeError(f"unsupported measurement record alternative {kind!r}")


def _format1_message(reports: Sequence[KpmReport]) -> dict[str, Any]:
    keys = tuple(reports[0].measurements)
    granularity = reports[0].granularity_period_ms
    if not keys:
        raise E2EncodeError("a KPM report needs at least one measurement")
    data = []
    for report in reports:
        if tuple(report.measurements) != keys or report.granularity_period_ms != granularity:
            raise E2EncodeError("reports of one message must share measurements and granularity")
        item: dict[str, Any] = {"measRecord": [_record_item(report.measurements[k]) for k in keys]}
        if report.incomplete:
            item["incompleteFlag"] = "true"
        data.append(item)
    body: dict[str, Any] = {"measData": data, "measInfoList": _info_list(keys)}
    if granularity is not None:
        body["granulPeriod"] = granularity
    return body


def _group_by_ue(reports: Sequence[KpmReport]) -> dict[UeId, list[KpmReport]]:
    groups: dict[UeId, list[KpmReport]] = {}
    for report in reports:
        assert report.ue_id is not None
        groups.setdefault(report.ue_id, []).append(report)
    return groups


def encode_indication_message(reports: Sequence[KpmReport]) -> bytes:
    """Cell-level reports -> IndicationMessage Format 1 (one measData item per report, in order);
    per-UE reports -> Format 3 (one UE report per UE, its reports in order)."""
    if not reports:
        raise E2EncodeError("an indication message needs at least one report")
    per_ue = [r.ue_id is not None for r in reports]
    if all(per_ue):
        items = [{"ueID": ue.to_asn(), "measReport": _format1_message(group)}
                 for ue, group in _group_by_ue(reports).items()]
        choice = ("indicationMessage-Format3", {"ueMeasReportList": items})
    elif not any(per_ue):
        choice = ("indicationMessage-Format1", _format1_message(reports))
    else:
        raise E2EncodeError("one message carries either cell-level or per-UE reports, not both")
    return kpm_encode("E2SM-KPM-IndicationMessage", {"indicationMessage-formats": choice})


def _reports(keys: Sequence[str], body: Mapping[str, Any], start: datetime,
             cell_id: str | None, ue_id: UeId | None) -> list[KpmReport]:
    """One KpmReport per ``measData`` item (granularity period) of a Format 1/2 body."""
    granularity = body.get("granulPeriod")
    reports = []
    for index, item in enumerate(body["measData"]):
        record = item["measRecord"]
        if len(record) != len(keys):
            raise E2DecodeError(f"measurement record has {len(record)} values for {len(keys)} "
                                "measurements")
        offset = timedelta(milliseconds=granularity * index) if granularity else timedelta()
        reports.append(KpmReport(
            collection_start=start + offset, granularity_period_ms=granularity,
            measurements={k: _meas_value(v) for k, v in zip(keys, record, strict=True)},
            incomplete="incompleteFlag" in item, cell_id=cell_id, ue_id=ue_id))
    return reports


def _format1_keys(body: Mapping[str, Any], fallback: Sequence[str] | None) -> Sequence[str]:
    if "measInfoList" in body:
        return _info_keys(body["measInfoList"])
    if fallback is None:
        raise E2DecodeError("message has no measurement information list and no subscribed "
                            "measurement names were given")
    return fallback


def _condition_text(cond: Mapping[str, Any]) -> str:
    kind, value = cond["matchingCondChoice"]
    if kind == "measLabel":
        return ",".join(f"{k}={_render(v)}" for k, v in value.items() if k != "noLabel")
    return _render(value)


def _format2_keys(body: Mapping[str, Any]) -> list[str]:
    keys = []
    for item in body["measCondUEidList"]:
        conds = [t for t in (_condition_text(c) for c in item["matchingCond"]) if t]
        base = _type_key(item["measType"])
        keys.append(f"{base}[{';'.join(conds)}]" if conds else base)
    return keys


@decode_boundary("indication message")
def decode_indication_message(data: bytes, header: KpmHeader, *, cell_id: str | None = None,
                              measurement_names: Sequence[str] | None = None,
                              fast: bool | None = None) -> tuple[KpmReport, ...]:
    """Decode an IndicationMessage into reports (one per granularity period, per UE for
    Format 3). ``cell_id`` (from the subscription) is stamped on each report;
    ``measurement_names`` (the subscribed order) is used when a Format 1 body omits its
    measurement information list. ``fast`` (``None``: the process default): read it with
    :mod:`xapp.e2.fast_kpm` when it can, else with asn1tools."""
    raw = kpm_decode("E2SM-KPM-IndicationMessage", data,
                     read_indication_message if use_fast(fast) else None)
    kind, body = raw["indicationMessage-formats"]
    start = header.collection_start
    if kind == "indicationMessage-Format1":
        return tuple(_reports(_format1_keys(body, measurement_names), body, start, cell_id, None))
    if kind == "indicationMessage-Format2":
        return tuple(_reports(_format2_keys(body), body, start, cell_id, None))
    if kind == "indicationMessage-Format3":
        out: list[KpmReport] = []
        for item in body["ueMeasReportList"]:
            report = item["measReport"]
            keys = _format1_keys(report, measurement_names)
            out.extend(_reports(keys, report, start, cell_id, UeId.from_asn(item["ueID"])))
        return tuple(out)
    raise E2DecodeError(f"unsupported indication message format {kind!r}")


# --------------------------------------------------------------------------- RAN function


def encode_ran_function_definition(definition: RanFunctionDefinition) -> bytes:
    """RANfunction-Description (names, event trigger styles, REPORT styles with measurements)."""
    name: dict[str, Any] = {"ranFunction-ShortName": definition.short_name,
                            "ranFunction-E2SM-OID": definition.e2sm_oid,
                            "ranFunction-Description": definition.description}
    if definition.instance is not None:
        name["ranFunction-Instance"] = definition.instance
    body: dict[str, Any] = {"ranFunction-Name": name}
    if definition.event_trigger_styles:
        body["ric-EventTriggerStyle-List"] = [
            {"ric-EventTriggerStyle-Type": s.style_type, "ric-EventTriggerStyle-Name": s.name,
             "ric-EventTriggerFormat-Type": s.format_type}
            for s in definition.event_trigger_styles]
    if definition.report_styles:
        body["ric-ReportStyle-List"] = [
            {"ric-ReportStyle-Type": s.style_type, "ric-ReportStyle-Name": s.name,
             "ric-ActionFormat-Type": s.action_format_type,
             "measInfo-Action-List": [{"measName": n} for n in s.measurement_names],
             "ric-IndicationHeaderFormat-Type": s.header_format_type,
             "ric-IndicationMessageFormat-Type": s.message_format_type}
            for s in definition.report_styles]
    return kpm_encode("E2SM-KPM-RANfunction-Description", body)


@decode_boundary("RAN function definition")
def decode_ran_function_definition(data: bytes) -> RanFunctionDefinition:
    """Decode a RANfunction-Description: which styles and measurements a node offers."""
    raw = kpm_decode("E2SM-KPM-RANfunction-Description", data)
    name = raw["ranFunction-Name"]
    triggers = tuple(
        EventTriggerStyle(s["ric-EventTriggerStyle-Type"], s["ric-EventTriggerStyle-Name"],
                          s["ric-EventTriggerFormat-Type"])
        for s in raw.get("ric-EventTriggerStyle-List", ()))
    reports = tuple(
        ReportStyle(s["ric-ReportStyle-Type"], s["ric-ReportStyle-Name"],
                    s["ric-ActionFormat-Type"],
                    tuple(m["measName"] for m in s["measInfo-Action-List"]),
                    s["ric-IndicationHeaderFormat-Type"], s["ric-IndicationMessageFormat-Type"])
        for s in raw.get("ric-ReportStyle-List", ()))
    return RanFunctionDefinition(
        short_name=name["ranFunction-ShortName"], e2sm_oid=name["ranFunction-E2SM-OID"],
        description=name["ranFunction-Description"], instance=name.get("ranFunction-Instance"),
        event_trigger_styles=triggers, report_styles=reports)
