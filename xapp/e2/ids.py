"""Identities carried in E2SM-KPM: PLMN identity, NR cell global identity, UE identity.

String forms (used as dictionary keys across kdran, e.g. the ``cell`` metric label):
- PLMN: the MCC and MNC digits, ``"00101"`` (MCC 001, MNC 01) or ``"310410"``.
- NR CGI: ``"<plmn>-<nci as 9 hex digits>"``, e.g. ``"00101-000000001"``.
- UE: ``"<UEID alternative>:<primary id>"``, e.g. ``"gNB-DU-UEID:17"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from xapp.e2.errors import E2DecodeError, E2EncodeError

NCI_BITS: Final = 36
"""NR cell identity length, bits (TS 38.413 NRCellIdentity)."""

UE_ID_KEYS: Final[dict[str, str]] = {
    "gNB-UEID": "amf-UE-NGAP-ID",
    "gNB-DU-UEID": "gNB-CU-UE-F1AP-ID",
    "gNB-CU-UP-UEID": "gNB-CU-CP-UE-E1AP-ID",
    "ng-eNB-UEID": "amf-UE-NGAP-ID",
    "ng-eNB-DU-UEID": "ng-eNB-CU-UE-W1AP-ID",
    "en-gNB-UEID": "m-eNB-UE-X2AP-ID",
    "eNB-UEID": "mME-UE-S1AP-ID",
}
"""For each ``UEID`` CHOICE alternative, the field that identifies the UE."""

ENCODABLE_UE_KINDS: Final = frozenset({"gNB-DU-UEID", "gNB-CU-UP-UEID", "ng-eNB-DU-UEID"})
"""Alternatives whose only mandatory field is the UE's id (no GUAMI/GUMMEI needed)."""


def plmn_to_bytes(plmn: str) -> bytes:
    """BCD-encode a PLMN ("MCC MNC" digits, 5 or 6 of them) as the 3-octet PLMNIdentity."""
    if not (plmn.isdigit() and len(plmn) in (5, 6)):
        raise E2EncodeError(f"PLMN must be 5 or 6 digits (MCC+MNC), got {plmn!r}")
    d = [int(c) for c in plmn]
    mnc3 = d[5] if len(d) == 6 else 0xF
    return bytes(((d[1] << 4) | d[0], (mnc3 << 4) | d[2], (d[4] << 4) | d[3]))


def plmn_from_bytes(octets: bytes) -> str:
    """Decode the 3-octet BCD PLMNIdentity to its MCC+MNC digit string."""
    if len(octets) != 3:
        raise E2DecodeError(f"PLMN identity must be 3 octets, got {len(octets)}")
    nibbles = [octets[0] & 0xF, octets[0] >> 4, octets[1] & 0xF,
               octets[2] & 0xF, octets[2] >> 4, octets[1] >> 4]
    if nibbles[5] == 0xF:
        nibbles.pop()
    if any(n > 9 for n in nibbles):
        raise E2DecodeError(f"PLMN identity {octets.hex()} has a non-decimal digit")
    return "".join(str(n) for n in nibbles)


@dataclass(frozen=True)
class NrCgi:
    """NR cell global identity: PLMN (MCC+MNC digits) and the 36-bit NR cell identity."""

    plmn: str
    nci: int

    def __post_init__(self) -> None:
        plmn_to_bytes(self.plmn)
        if not 0 <= self.nci < (1 << NCI_BITS):
            raise E2EncodeError(f"NR cell identity must fit {NCI_BITS} bits, got {self.nci}")

    def __str__(self) -> str:
        return f"{self.plmn}-{self.nci:09x}"

    @classmethod
    def parse(cls, text: str) -> NrCgi:
        """Inverse of ``str()``: ``"00101-000000001"`` -> NrCgi("00101", 1)."""
        plmn, sep, nci = text.partition("-")
        if not sep:
            raise ValueError(f"NR CGI must look like '00101-000000001', got {text!r}")
        return cls(plmn, int(nci, 16))

    def to_asn(self) -> tuple[str, dict[str, Any]]:
        """The E2SM ``CGI`` CHOICE value (asn1tools form)."""
        return ("nR-CGI", {"pLMNIdentity": plmn_to_bytes(self.plmn),
                           "nRCellIdentity": ((self.nci << 4).to_bytes(5, "big"), NCI_BITS)})


def cgi_to_string(value: tuple[str, dict[str, Any]]) -> str:
    """Render a decoded ``CGI`` CHOICE (NR as ``NrCgi`` text, E-UTRA as ``eutra:<plmn>-<eci>``)."""
    kind, body = value
    if kind == "nR-CGI":
        bits, _ = body["nRCellIdentity"]
        return str(NrCgi(plmn_from_bytes(body["pLMNIdentity"]), int.from_bytes(bits, "big") >> 4))
    if kind == "eUTRA-CGI":
        bits, _ = body["eUTRACellIdentity"]
        eci = int.from_bytes(bits, "big") >> 4
        return f"eutra:{plmn_from_bytes(body['pLMNIdentity'])}-{eci:07x}"
    raise E2DecodeError(f"unsupported CGI alternative {kind!r}")


@dataclass(frozen=True)
class UeId:
    """A UE as E2SM names it: the ``UEID`` CHOICE alternative and that alternative's UE id."""

    kind: str
    value: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    @classmethod
    def du(cls, f1ap_id: int) -> UeId:
        """A UE at a gNB-DU, identified by its gNB-CU UE F1AP ID (what a DU's E2 agent knows)."""
        return cls("gNB-DU-UEID", f1ap_id)

    def to_asn(self) -> tuple[str, dict[str, Any]]:
        """The E2SM ``UEID`` CHOICE value (asn1tools form); only id-only alternatives encode."""
        if self.kind not in ENCODABLE_UE_KINDS:
            raise E2EncodeError(f"cannot encode UEID alternative {self.kind!r}; "
                                f"supported: {sorted(ENCODABLE_UE_KINDS)}")
        return (self.kind, {UE_ID_KEYS[self.kind]: self.value})

    @classmethod
    def from_asn(cls, value: tuple[str, dict[str, Any]]) -> UeId:
        """Read the identifying field of any decoded ``UEID`` alternative."""
        kind, body = value
        key = UE_ID_KEYS.get(kind)
        if key is None:
            raise E2DecodeError(f"unsupported UEID alternative {kind!r}")
        return cls(kind, int(body[key]))
