"""E2 codec: E2AP (pycrate) and E2SM-KPM v03.00 (asn1tools) with typed results.

RICindications are first read by small ALIGNED-PER readers (:mod:`xapp.e2.fast_e2ap`,
:mod:`xapp.e2.fast_kpm`) that give the libraries' values for the canonical encodings they handle
and pass everything else to the libraries (``fast=False`` or ``KDRAN_E2_DECODER=library``: the
libraries only; :mod:`xapp.e2.decoder_path`).

Typical xApp use::

    from xapp.e2 import decode_indication
    ind = decode_indication(payload, cell_id="00101-000000001")
    for report in ind.reports:
        nmse_db = report.value(measurements.CHPRED_NMSE_DB_MEAN)

Every decoder raises only :class:`E2DecodeError`.
"""

from xapp.e2 import measurements, rmr_types
from xapp.e2.e2ap import (
    Cause,
    E2apMessage,
    RicAction,
    RicIndication,
    RicRequestId,
    SubscriptionDeleteFailure,
    SubscriptionDeleteRequest,
    SubscriptionDeleteResponse,
    SubscriptionFailure,
    SubscriptionRequest,
    SubscriptionResponse,
    decode_e2ap,
    encode_e2ap,
)
from xapp.e2.errors import E2DecodeError, E2EncodeError, E2Error
from xapp.e2.ids import NrCgi, UeId
from xapp.e2.indication import Indication, decode_indication
from xapp.e2.kpm_codec import (
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

__all__ = [
    "ActionDefinition",
    "Cause",
    "E2DecodeError",
    "E2EncodeError",
    "E2Error",
    "E2apMessage",
    "EventTrigger",
    "EventTriggerStyle",
    "Indication",
    "KpmHeader",
    "KpmReport",
    "MeasKind",
    "MeasValue",
    "NrCgi",
    "RanFunctionDefinition",
    "ReportStyle",
    "RicAction",
    "RicIndication",
    "RicRequestId",
    "SubscriptionDeleteFailure",
    "SubscriptionDeleteRequest",
    "SubscriptionDeleteResponse",
    "SubscriptionFailure",
    "SubscriptionRequest",
    "SubscriptionResponse",
    "UeCondition",
    "UeId",
    "decode_action_definition",
    "decode_e2ap",
    "decode_event_trigger",
    "decode_indication",
    "decode_indication_header",
    "decode_indication_message",
    "decode_ran_function_definition",
    "encode_action_definition",
    "encode_e2ap",
    "encode_event_trigger",
    "encode_indication_header",
    "encode_indication_message",
    "encode_ran_function_definition",
    "measurements",
    "rmr_types",
]
