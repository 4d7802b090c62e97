"""One call from RICindication bytes to typed KPM reports: what the xApp does per RMR 12050."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xapp.e2.boundary import decode_boundary
from xapp.e2.e2ap import RicIndication, RicRequestId, decode_e2ap
from xapp.e2.errors import E2DecodeError
from xapp.e2.kpm_codec import decode_indication_header, decode_indication_message
from xapp.e2.kpm_model import KpmHeader, KpmReport


@dataclass(frozen=True)
class Indication:
    """A decoded RICindication carrying E2SM-KPM content.

    ``reports`` has one entry per granularity period (Format 1/2) or per UE and period
    (Format 3), in message order.
    """

    request: RicRequestId
    ran_function_id: int
    action_id: int
    sequence_number: int | None
    indication_type: str
    header: KpmHeader
    reports: tuple[KpmReport, ...]


@decode_boundary("RIC indication")
def decode_indication(ric_indication: bytes, *, cell_id: str | None = None,
                      measurement_names: Sequence[str] | None = None) -> Indication:
    """Decode E2AP RICindication bytes and the KPM header and message inside them.

    ``cell_id`` and ``measurement_names`` come from the subscription the indication answers
    (the KPM message names neither the cell of a cell-level report nor, optionally, its
    measurements). Raises only :class:`E2DecodeError`.
    """
    pdu = decode_e2ap(ric_indication)
    if not isinstance(pdu, RicIndication):
        raise E2DecodeError(f"expected a RICindication, got {type(pdu).__name__}")
    header = decode_indication_header(pdu.header)
    reports = decode_indication_message(pdu.message, header, cell_id=cell_id,
                                        measurement_names=measurement_names)
    return Indication(request=pdu.request, ran_function_id=pdu.ran_function_id,
                      action_id=pdu.action_id, sequence_number=pdu.sequence_number,
                      indication_type=pdu.indication_type, header=header, reports=reports)
