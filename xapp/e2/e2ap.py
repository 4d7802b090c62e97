"""E2AP messages of the RIC subscription and indication procedures, via pycrate's E2AP module.

The APER codec is ``pycrate_asn1dir.E2AP`` (the O-RAN E2AP ASN.1 compiled by pycrate; in pycrate
0.8.1 it is a post-v03.00 revision: OID arc ``53148 e2(1) version2(2)``, with RICquery and
RICsubscriptionAudit procedures, and the ``Cause`` IE mandatory in RICsubscriptionFailure). The
subscription, deletion and indication messages used here are unchanged in layout since E2AP v02.

pycrate ASN.1 objects are module-level singletons holding the last value they encoded or
decoded, so every use goes through one process-wide lock: the functions here are thread-safe,
and concurrent callers serialise on it. RICindications, the hot path, are first read by
:mod:`xapp.e2.fast_e2ap` (no shared state, no lock), which yields pycrate's value for the
canonical encodings it handles and hands everything else to pycrate.

Procedure codes, IE ids and criticalities are read from the pycrate module, not restated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from pycrate_asn1dir import E2AP

from xapp.e2 import rmr_types
from xapp.e2.aper import Unhandled
from xapp.e2.boundary import check_payload, decode_boundary
from xapp.e2.decoder_path import use_fast
from xapp.e2.errors import E2DecodeError, E2EncodeError
from xapp.e2.fast_e2ap import read_ric_indication

_LOCK: Final = threading.Lock()
_PDU: Final = E2AP.E2AP_PDU_Descriptions.E2AP_PDU
_C: Final = E2AP.E2AP_Constants
_IES: Final = E2AP.E2AP_PDU_Contents

ID_REQUEST: Final[int] = _C.id_RICrequestID._val
ID_RAN_FUNCTION: Final[int] = _C.id_RANfunctionID._val
ID_DETAILS: Final[int] = _C.id_RICsubscriptionDetails._val
ID_ACTION_SETUP: Final[int] = _C.id_RICaction_ToBeSetup_Item._val
ID_ADMITTED: Final[int] = _C.id_RICactions_Admitted._val
ID_ADMITTED_ITEM: Final[int] = _C.id_RICaction_Admitted_Item._val
ID_NOT_ADMITTED: Final[int] = _C.id_RICactions_NotAdmitted._val
ID_NOT_ADMITTED_ITEM: Final[int] = _C.id_RICaction_NotAdmitted_Item._val
ID_CAUSE: Final[int] = _C.id_Cause._val
ID_ACTION: Final[int] = _C.id_RICactionID._val
ID_SN: Final[int] = _C.id_RICindicationSN._val
ID_IND_TYPE: Final[int] = _C.id_RICindicationType._val
ID_IND_HEADER: Final[int] = _C.id_RICindicationHeader._val
ID_IND_MESSAGE: Final[int] = _C.id_RICindicationMessage._val
ID_CALL_PROCESS: Final[int] = _C.id_RICcallProcessID._val


def _criticalities(ie_set: Any) -> dict[int, str]:
    return {entry["id"]: entry["criticality"] for entry in ie_set._val.root}


def _procedure(name: str) -> tuple[int, str]:
    proc = getattr(E2AP.E2AP_PDU_Descriptions, name)._val
    return proc["procedureCode"], proc["criticality"]


_CRIT: Final = {name: _criticalities(getattr(_IES, name)) for name in (
    "RICsubscriptionRequest_IEs", "RICsubscriptionResponse_IEs", "RICsubscriptionFailure_IEs",
    "RICsubscriptionDeleteRequest_IEs", "RICsubscriptionDeleteResponse_IEs",
    "RICsubscriptionDeleteFailure_IEs", "RICindication_IEs",
    "RICaction_ToBeSetup_ItemIEs", "RICaction_Admitted_ItemIEs", "RICaction_NotAdmitted_ItemIEs")}
PROC_SUBSCRIPTION: Final = _procedure("ricSubscription")
PROC_SUBSCRIPTION_DELETE: Final = _procedure("ricSubscriptionDelete")
PROC_INDICATION: Final = _procedure("ricIndication")


@dataclass(frozen=True)
class RicRequestId:
    """RIC request id: requestor (the xApp, 0..65535) and instance (0..65535)."""

    requestor_id: int
    instance_id: int


@dataclass(frozen=True)
class Cause:
    """E2AP ``Cause``: the group (``ricRequest``, ``ricService``, ``e2Node``, ``transport``,
    ``protocol``, ``misc``) and its enumerated value, e.g. ``ricRequest/action-not-supported``."""

    group: str
    value: str

    def __str__(self) -> str:
        return f"{self.group}/{self.value}"


@dataclass(frozen=True)
class RicAction:
    """One action to set up: id (0..255), type, and the E2SM action definition bytes."""

    action_id: int
    definition: bytes | None = None
    action_type: str = "report"


@dataclass(frozen=True)
class SubscriptionRequest:
    """RICsubscriptionRequest (xApp -> E2 node)."""

    rmr_type: ClassVar[int] = rmr_types.RIC_SUB_REQ
    request: RicRequestId
    ran_function_id: int
    event_trigger: bytes
    actions: tuple[RicAction, ...]


@dataclass(frozen=True)
class SubscriptionResponse:
    """RICsubscriptionResponse: admitted action ids, refused ones with their cause."""

    rmr_type: ClassVar[int] = rmr_types.RIC_SUB_RESP
    request: RicRequestId
    ran_function_id: int
    admitted: tuple[int, ...]
    not_admitted: tuple[tuple[int, Cause], ...] = ()


@dataclass(frozen=True)
class SubscriptionFailure:
    """RICsubscriptionFailure: the whole subscription refused, with a cause."""

    rmr_type: ClassVar[int] = rmr_types.RIC_SUB_FAILURE
    request: RicRequestId
    ran_function_id: int
    cause: Cause


@dataclass(frozen=True)
class SubscriptionDeleteRequest:
    """RICsubscriptionDeleteRequest (xApp -> E2 node)."""

    rmr_type: ClassVar[int] = rmr_types.RIC_SUB_DEL_REQ
    request: RicRequestId
    ran_function_id: int


@dataclass(frozen=True)
class SubscriptionDeleteResponse:
    """RICsubscriptionDeleteResponse."""

    rmr_type: ClassVar[int] = rmr_types.RIC_SUB_DEL_RESP
    request: RicRequestId
    ran_function_id: int


@dataclass(frozen=True)
class SubscriptionDeleteFailure:
    """RICsubscriptionDeleteFailure, e.g. for an unknown request id."""

    rmr_type: ClassVar[int] = rmr_types.RIC_SUB_DEL_FAILURE
    request: RicRequestId
    ran_function_id: int
    cause: Cause


@dataclass(frozen=True)
class RicIndication:
    """RICindication: E2SM header and message bytes for one action of a subscription."""

    rmr_type: ClassVar[int] = rmr_types.RIC_INDICATION
    request: RicRequestId
    ran_function_id: int
    action_id: int
    header: bytes
    message: bytes
    sequence_number: int | None = None
    indication_type: str = "report"
    call_process_id: bytes | None = None


E2apMessage = (SubscriptionRequest | SubscriptionResponse | SubscriptionFailure
               | SubscriptionDeleteRequest | SubscriptionDeleteResponse | SubscriptionDeleteFailure
               | RicIndication)

# --------------------------------------------------------------------------- encoding helpers


def _ie(ie_set: str, ie_id: int, type_name: str, value: Any) -> dict[str, Any]:
    return {"id": ie_id, "criticality": _CRIT[ie_set][ie_id], "value": (type_name, value)}


def _common_ies(ie_set: str, request: RicRequestId, ran_function_id: int) -> list[dict[str, Any]]:
    return [_ie(ie_set, ID_REQUEST, "RICrequestID",
                {"ricRequestorID": request.requestor_id, "ricInstanceID": request.instance_id}),
            _ie(ie_set, ID_RAN_FUNCTION, "RANfunctionID", ran_function_id)]


def _pdu(kind: str, procedure: tuple[int, str], name: str,
         ies: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    code, criticality = procedure
    return (kind, {"procedureCode": code, "criticality": criticality,
                   "value": (name, {"protocolIEs": ies})})


def _action_item(action: RicAction) -> dict[str, Any]:
    body: dict[str, Any] = {"ricActionID": action.action_id, "ricActionType": action.action_type}
    if action.definition is not None:
        body["ricActionDefinition"] = action.definition
    return _ie("RICaction_ToBeSetup_ItemIEs", ID_ACTION_SETUP, "RICaction-ToBeSetup-Item", body)


def _subscription_request(msg: SubscriptionRequest) -> tuple[str, dict[str, Any]]:
    ies = _common_ies("RICsubscriptionRequest_IEs", msg.request, msg.ran_function_id)
    details = {"ricEventTriggerDefinition": msg.event_trigger,
               "ricAction-ToBeSetup-List": [_action_item(a) for a in msg.actions]}
    ies.append(_ie("RICsubscriptionRequest_IEs", ID_DETAILS, "RICsubscriptionDetails", details))
    return _pdu("initiatingMessage", PROC_SUBSCRIPTION, "RICsubscriptionRequest", ies)


def _cause_value(cause: Cause) -> tuple[str, str]:
    return (cause.group, cause.value)


def _subscription_response(msg: SubscriptionResponse) -> tuple[str, dict[str, Any]]:
    name = "RICsubscriptionResponse_IEs"
    ies = _common_ies(name, msg.request, msg.ran_function_id)
    admitted = [_ie("RICaction_Admitted_ItemIEs", ID_ADMITTED_ITEM, "RICaction-Admitted-Item",
                    {"ricActionID": a}) for a in msg.admitted]
    ies.append(_ie(name, ID_ADMITTED, "RICaction-Admitted-List", admitted))
    if msg.not_admitted:
        refused = [_ie("RICaction_NotAdmitted_ItemIEs", ID_NOT_ADMITTED_ITEM,
                       "RICaction-NotAdmitted-Item",
                       {"ricActionID": a, "cause": _cause_value(c)}) for a, c in msg.not_admitted]
        ies.append(_ie(name, ID_NOT_ADMITTED, "RICaction-NotAdmitted-List", refused))
    return _pdu("successfulOutcome", PROC_SUBSCRIPTION, "RICsubscriptionResponse", ies)


def _subscription_failure(msg: SubscriptionFailure) -> tuple[str, dict[str, Any]]:
    name = "RICsubscriptionFailure_IEs"
    ies = _common_ies(name, msg.request, msg.ran_function_id)
    ies.append(_ie(name, ID_CAUSE, "Cause", _cause_value(msg.cause)))
    return _pdu("unsuccessfulOutcome", PROC_SUBSCRIPTION, "RICsubscriptionFailure", ies)


def _delete_request(msg: SubscriptionDeleteRequest) -> tuple[str, dict[str, Any]]:
    ies = _common_ies("RICsubscriptionDeleteRequest_IEs", msg.request, msg.ran_function_id)
    return _pdu("initiatingMessage", PROC_SUBSCRIPTION_DELETE, "RICsubscriptionDeleteRequest", ies)


def _delete_response(msg: SubscriptionDeleteResponse) -> tuple[str, dict[str, Any]]:
    ies = _common_ies("RICsubscriptionDeleteResponse_IEs", msg.request, msg.ran_function_id)
    return _pdu("successfulOutcome", PROC_SUBSCRIPTION_DELETE, "RICsubscriptionDeleteResponse",
                ies)


def _delete_failure(msg: SubscriptionDeleteFailure) -> tuple[str, dict[str, Any]]:
    name = "RICsubscriptionDeleteFailure_IEs"
    ies = _common_ies(name, msg.request, msg.ran_function_id)
    ies.append(_ie(name, ID_CAUSE, "Cause", _cause_value(msg.cause)))
    return _pdu("unsuccessfulOutcome", PROC_SUBSCRIPTION_DELETE, "RICsubscriptionDeleteFailure",
                ies)


def _indication(msg: RicIndication) -> tuple[str, dict[str, Any]]:
    name = "RICindication_IEs"
    ies = _common_ies(name, msg.request, msg.ran_function_id)
    ies.append(_ie(name, ID_ACTION, "RICactionID", msg.action_id))
    if msg.sequence_number is not None:
        ies.append(_ie(name, ID_SN, "RICindicationSN", msg.sequence_number))
    ies += [_ie(name, ID_IND_TYPE, "RICindicationType", msg.indication_type),
            _ie(name, ID_IND_HEADER, "RICindicationHeader", msg.header),
            _ie(name, ID_IND_MESSAGE, "RICindicationMessage", msg.message)]
    if msg.call_process_id is not None:
        ies.append(_ie(name, ID_CALL_PROCESS, "RICcallProcessID", msg.call_process_id))
    return _pdu("initiatingMessage", PROC_INDICATION, "RICindication", ies)


_ENCODERS: Final[dict[type, Callable[[Any], tuple[str, dict[str, Any]]]]] = {
    SubscriptionRequest: _subscription_request,
    SubscriptionResponse: _subscription_response,
    SubscriptionFailure: _subscription_failure,
    SubscriptionDeleteRequest: _delete_request,
    SubscriptionDeleteResponse: _delete_response,
    SubscriptionDeleteFailure: _delete_failure,
    RicIndication: _indication,
}


def encode_e2ap(message: E2apMessage) -> bytes:
    """APER-encode one E2AP message as an ``E2AP-PDU``."""
    encoder = _ENCODERS.get(type(message))
    if encoder is None:
        raise E2EncodeError(f"cannot encode {type(message).__name__}")
    value = encoder(message)
    try:
        with _LOCK:
            _PDU.set_val(value)
            return bytes(_PDU.to_aper())
    except Exception as exc:  # pycrate raises ASN1ObjErr and friends on out-of-range values
        raise E2EncodeError(f"{type(message).__name__}: {exc or type(exc).__name__}") from exc


# --------------------------------------------------------------------------- decoding helpers


class _Ies:
    """The protocol IEs of one message, by id; missing mandatory IEs raise E2DecodeError."""

    def __init__(self, message: str, ies: list[dict[str, Any]]) -> None:
        self.message = message
        self.by_id: dict[int, Any] = {ie["id"]: ie["value"][1] for ie in ies}

    def get(self, ie_id: int) -> Any:
        try:
            return self.by_id[ie_id]
        except KeyError:
            raise E2DecodeError(f"{self.message}: mandatory IE {ie_id} missing") from None

    def optional(self, ie_id: int) -> Any:
        return self.by_id.get(ie_id)

    def request(self) -> RicRequestId:
        value = self.get(ID_REQUEST)
        return RicRequestId(value["ricRequestorID"], value["ricInstanceID"])

    def ran_function(self) -> int:
        return int(self.get(ID_RAN_FUNCTION))


def _cause(value: tuple[str, str]) -> Cause:
    return Cause(group=value[0], value=str(value[1]))


def _parse_subscription_request(ies: _Ies) -> SubscriptionRequest:
    details = ies.get(ID_DETAILS)
    actions = tuple(
        RicAction(action_id=item["ricActionID"], definition=item.get("ricActionDefinition"),
                  action_type=item["ricActionType"])
        for item in (entry["value"][1] for entry in details["ricAction-ToBeSetup-List"]))
    return SubscriptionRequest(ies.request(), ies.ran_function(),
                               details["ricEventTriggerDefinition"], actions)


def _parse_subscription_response(ies: _Ies) -> SubscriptionResponse:
    admitted = tuple(e["value"][1]["ricActionID"] for e in ies.get(ID_ADMITTED))
    refused = tuple((e["value"][1]["ricActionID"], _cause(e["value"][1]["cause"]))
                    for e in ies.optional(ID_NOT_ADMITTED) or ())
    return SubscriptionResponse(ies.request(), ies.ran_function(), admitted, refused)


def _parse_subscription_failure(ies: _Ies) -> SubscriptionFailure:
    return SubscriptionFailure(ies.request(), ies.ran_function(), _cause(ies.get(ID_CAUSE)))


def _parse_delete_request(ies: _Ies) -> SubscriptionDeleteRequest:
    return SubscriptionDeleteRequest(ies.request(), ies.ran_function())


def _parse_delete_response(ies: _Ies) -> SubscriptionDeleteResponse:
    return SubscriptionDeleteResponse(ies.request(), ies.ran_function())


def _parse_delete_failure(ies: _Ies) -> SubscriptionDeleteFailure:
    return SubscriptionDeleteFailure(ies.request(), ies.ran_function(), _cause(ies.get(ID_CAUSE)))


def _parse_indication(ies: _Ies) -> RicIndication:
    return RicIndication(
        request=ies.request(), ran_function_id=ies.ran_function(), action_id=ies.get(ID_ACTION),
        header=ies.get(ID_IND_HEADER), message=ies.get(ID_IND_MESSAGE),
        sequence_number=ies.optional(ID_SN), indication_type=ies.get(ID_IND_TYPE),
        call_process_id=ies.optional(ID_CALL_PROCESS))


_PARSERS: Final[Mapping[tuple[str, str], Callable[[_Ies], E2apMessage]]] = {
    ("initiatingMessage", "RICsubscriptionRequest"): _parse_subscription_request,
    ("successfulOutcome", "RICsubscriptionResponse"): _parse_subscription_response,
    ("unsuccessfulOutcome", "RICsubscriptionFailure"): _parse_subscription_failure,
    ("initiatingMessage", "RICsubscriptionDeleteRequest"): _parse_delete_request,
    ("successfulOutcome", "RICsubscriptionDeleteResponse"): _parse_delete_response,
    ("unsuccessfulOutcome", "RICsubscriptionDeleteFailure"): _parse_delete_failure,
    ("initiatingMessage", "RICindication"): _parse_indication,
}


def _aper_to_value(payload: bytes, fast: bool) -> Any:
    if fast:
        try:
            return read_ric_indication(payload)
        except Unhandled:
            pass
    with _LOCK:
        _PDU.from_aper(payload)
        return _PDU.get_val()


@decode_boundary("E2AP PDU")
def decode_e2ap(data: bytes, *, fast: bool | None = None) -> E2apMessage:
    """Decode an ``E2AP-PDU`` into one of the supported messages (others: E2DecodeError).

    On the fast path (``fast=True``; ``None``: the process default of
    :mod:`xapp.e2.decoder_path`) a RICindication is first read by :mod:`xapp.e2.fast_e2ap`,
    which gives pycrate's value for the encodings it handles; everything else, and everything
    with ``fast=False``, is decoded by pycrate."""
    kind, body = _aper_to_value(check_payload("E2AP PDU", data), use_fast(fast))
    name, content = body["value"]
    parser = _PARSERS.get((kind, name))
    if parser is None:
        raise E2DecodeError(f"unsupported E2AP message {kind}/{name}")
    return parser(_Ies(name, content["protocolIEs"]))
