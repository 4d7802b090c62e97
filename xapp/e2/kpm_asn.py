"""The compiled E2SM-KPM v03.00 ASN.1 specification (asn1tools, aligned PER).

The module text lives in ``asn/`` (transcribed from O-RAN.WG3.E2SM-KPM-R003-v03.00 and the E2SM
common IEs). It is compiled once per process on first use (~0.6-1.3 s) and cached. Every encode
and decode checks constraints. asn1tools' compiled specification keeps no per-call state, so
these functions are safe to call from several threads.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asn1tools

from xapp.e2.aper import Unhandled
from xapp.e2.boundary import as_decode_error, check_payload
from xapp.e2.errors import E2EncodeError

ASN_DIR: Final = Path(__file__).with_name("asn")
KPM_ASN_FILES: Final = (ASN_DIR / "e2sm_kpm_v03.00.asn", ASN_DIR / "e2sm_common_ies.asn")
KPM_OID: Final = "1.3.6.1.4.1.53148.1.3.2.2"
"""E2SM-KPM v03.00 module identifier (oran e2 version3 e2sm e2sm-KPMMON-IEs), dotted."""


@dataclass(frozen=True)
class CompiledKpm:
    """The asn1tools specification and how long compiling it took (seconds, wall clock)."""

    spec: Any
    compile_seconds: float


@functools.cache
def compiled_kpm() -> CompiledKpm:
    """Compile the KPM + common IE modules (once per process)."""
    start = time.perf_counter()
    spec = asn1tools.compile_files([str(p) for p in KPM_ASN_FILES], codec="per")
    return CompiledKpm(spec=spec, compile_seconds=time.perf_counter() - start)


def kpm_encode(type_name: str, value: Any) -> bytes:
    """APER-encode ``value`` (asn1tools form) as ``type_name``; constraints are checked."""
    try:
        return bytes(compiled_kpm().spec.encode(type_name, value, check_constraints=True))
    except Exception as exc:  # asn1tools raises EncodeError, ConstraintsError, KeyError, ...
        raise E2EncodeError(f"{type_name}: {exc or type(exc).__name__}") from exc


def kpm_decode(type_name: str, data: bytes,
               reader: Callable[[bytes], Any] | None = None) -> Any:
    """APER-decode ``data`` as ``type_name`` with constraint checks; only E2DecodeError escapes.

    ``reader`` is a fast reader that returns asn1tools' value for the encodings it handles and
    raises :class:`~xapp.e2.aper.Unhandled` for the others, which asn1tools then decodes."""
    payload = check_payload(type_name, data)
    if reader is not None:
        try:
            return reader(payload)
        except Unhandled:
            pass
    try:
        return compiled_kpm().spec.decode(type_name, payload, check_constraints=True)
    except Exception as exc:  # the boundary: any asn1tools failure is a decode failure
        raise as_decode_error(type_name, exc) from exc
