"""One call from RICindication bytes to typed KPM reports: what the xApp does per RMR 12050."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xapp.e2.boundary import decode_boundary
from xapp.e2.decoder_path import use_fast
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
                      measurement_names: Sequence[str] | None = None,
                      fast: bool | None = None) -> Indication:
    """Decode E2AP RICindication bytes and the KPM header and message inside them.

    ``cell_id`` and ``measurement_names`` come from the subscription the indication answers
    (the KPM message names neither the cell of a cell-level report nor, optionally, its
    measurements). ``fast=True`` reads canonical encodings of the common layouts with the fast
    readers (:mod:`xapp.e2.fast_e2ap`, :mod:`xapp.e2.fast_kpm`) and everything else with the
    libraries; ``fast=False`` uses only the libraries (pycrate, asn1tools), the reference; both
    give equal results. ``None`` (what the xApp passes): the process default of
    :mod:`xapp.e2.decoder_path`, the fast path unless ``KDRAN_E2_DECODER=library``. Raises only
    :class:`E2DecodeError`.
    """
    fast = use_fast(fast)
    pdu = decode_e2ap(ric_indication, fast=fast)
    if not isinstance(pdu, RicIndication):
        raise E2DecodeError(f"expected a RICindication, got {type(pdu).__name__}")
    header = decode_indication_header(pdu.header, fast=fast)
    reports = decode_indication_message(pdu.message, header, cell_id=cell_id,
                                        measurement_names=measurement_names, fast=fast)
    return Indication(request=pdu.request, ran_function_id=pdu.ran_function_id,
                      action_id=pdu.action_id, sequence_number=pdu.sequence_number,
                      indication_type=pdu.indication_type, header=header, reports=reports)
