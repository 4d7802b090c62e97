"""Fast reader for the one E2AP message of the hot path: RICindication.

``read_ric_indication`` returns exactly the value pycrate's ``E2AP_PDU.get_val()`` gives after
``from_aper`` on the same bytes, for canonical encodings of a RICindication whose IEs are the
ones of ``RICindication-IEs``, each at most once, every mandatory one present, with the
criticality the IE set gives it. Anything else (another message, an unknown or repeated IE, a
set extension bit, a value out of range, non-canonical or malformed bytes) raises
:class:`Unhandled` and the caller decodes with pycrate, the reference.

Procedure code, IE ids, criticalities, presence, type names and integer bounds are read from
pycrate's E2AP module, not restated; the field layouts follow X.691 (ALIGNED) for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pycrate_asn1dir import E2AP

from xapp.e2.aper import AperReader, Unhandled

_IES: Final = E2AP.E2AP_IEs
_CRITICALITY: Final[tuple[str, ...]] = tuple(E2AP.E2AP_CommonDataTypes.Criticality._cont)
_INDICATION: Final = E2AP.E2AP_PDU_Descriptions.ricIndication._val
_INDICATION_TYPES: Final[tuple[str, ...]] = tuple(_IES.RICindicationType._cont)


def _upper_bound(name: str) -> int | None:
    """The upper bound of ``INTEGER (0..ub)`` type ``name`` when it has one of the two
    octet-aligned forms (X.691 11.5.7.2-3): ub = 255 (one octet) or 255 < ub < 65536 (two)."""
    constraint = getattr(_IES, name)._const_val
    bounds = constraint.root[0] if constraint is not None and not constraint.ext else None
    if bounds is None or bounds.lb != 0 or not 0xFF <= bounds.ub <= 0xFFFF:
        return None
    return int(bounds.ub)


def _integer_reader(name: str, upper: int) -> Callable[[AperReader], int]:
    """INTEGER (0..upper): one aligned octet when upper is 255, two aligned octets otherwise."""
    count = 1 if upper == 0xFF else 2

    def read(r: AperReader) -> int:
        value = r.uint(count)
        if value > upper:
            raise Unhandled(f"{name} out of range")
        return value

    return read


def _request_id(r: AperReader) -> dict[str, int]:
    """RICrequestID ::= SEQUENCE { ricRequestorID, ricInstanceID (both 0..65535), ... }."""
    if r.bit():
        raise Unhandled("extension")
    return {"ricRequestorID": r.uint(2), "ricInstanceID": r.uint(2)}


def _indication_type(r: AperReader) -> str:
    """RICindicationType ::= ENUMERATED {report, insert, ...}."""
    choice = r.bits(2)  # ext, root index
    if choice >> 1:
        raise Unhandled("extension")
    return _INDICATION_TYPES[choice]


def _octet_string(r: AperReader) -> bytes:
    """Unconstrained OCTET STRING: a length determinant and the octets."""
    return r.octets(r.length())


def _readers() -> dict[str, Callable[[AperReader], Any]]:
    """Value readers by E2AP type name (integers only when pycrate's bounds fit the reader)."""
    readers: dict[str, Callable[[AperReader], Any]] = {
        "RICrequestID": _request_id, "RICindicationType": _indication_type,
        "RICindicationHeader": _octet_string, "RICindicationMessage": _octet_string,
        "RICcallProcessID": _octet_string}
    for name in ("RANfunctionID", "RICactionID", "RICindicationSN"):
        upper = _upper_bound(name)
        if upper is not None:
            readers[name] = _integer_reader(name, upper)
    return readers


@dataclass(frozen=True)
class _IeSpec:
    type_name: str
    criticality: int
    read: Callable[[AperReader], Any]


_IE_SET: Final = E2AP.E2AP_PDU_Contents.RICindication_IEs._val.root


def _ie_specs() -> dict[int, _IeSpec]:
    """The IEs of RICindication-IEs the reader takes (an IE of a type without a reader, should
    pycrate's module grow one, makes its messages go to pycrate)."""
    readers = _readers()
    specs = {}
    for entry in _IE_SET:
        type_name = entry["Value"]._typeref.called[1]
        if type_name in readers:
            specs[entry["id"]] = _IeSpec(type_name, _CRITICALITY.index(entry["criticality"]),
                                         readers[type_name])
    return specs


_SPECS: Final = _ie_specs()
_MANDATORY: Final = frozenset(e["id"] for e in _IE_SET if e["presence"] == "mandatory")
_PROCEDURE: Final = _INDICATION["procedureCode"]
_PROCEDURE_CRITICALITY: Final = _CRITICALITY.index(_INDICATION["criticality"])


def _protocol_ie(r: AperReader) -> dict[str, Any]:
    """ProtocolIE-Field: id (16 bits), criticality (2 bits + 6 padding bits), value in an
    open type."""
    field = r.uint(3)
    ie_id = field >> 8
    spec = _SPECS.get(ie_id)
    if spec is None or field & 0xFF != spec.criticality << 6:
        raise Unhandled("unknown IE, criticality or padding")
    size = r.length()
    stop = r.pos + (size << 3)
    value = spec.read(r)
    r.align()
    if r.pos != stop:
        raise Unhandled("open type length")
    return {"id": ie_id, "criticality": _CRITICALITY[spec.criticality],
            "value": (spec.type_name, value)}


def read_ric_indication(data: bytes) -> tuple[str, dict[str, Any]]:
    """E2AP-PDU bytes of a RICindication -> pycrate's value of the PDU."""
    r = AperReader(data)
    if r.bits(3):  # CHOICE ext, 2-bit index: initiatingMessage
        raise Unhandled("not an initiating message")
    if r.uint(1) != _PROCEDURE or r.bits(2) != _PROCEDURE_CRITICALITY:
        raise Unhandled("not a RICindication")
    size = r.length()
    if r.pos + (size << 3) != r.end or r.bit():  # the open type ends the PDU; ext bit
        raise Unhandled("open type length or extension")
    ies = [_protocol_ie(r) for _ in range(r.uint(2))]
    ids = {ie["id"] for ie in ies}
    if len(ids) != len(ies) or not ids >= _MANDATORY:
        raise Unhandled("repeated or missing IEs")
    r.finish()
    return ("initiatingMessage", {
        "procedureCode": _PROCEDURE, "criticality": _CRITICALITY[_PROCEDURE_CRITICALITY],
        "value": ("RICindication", {"protocolIEs": ies})})
