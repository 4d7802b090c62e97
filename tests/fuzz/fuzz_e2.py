"""atheris harness: the xApp's E2 decoders (RICindication, KPM indication header and message),
on the fast path and on the library path, must raise nothing but ``E2DecodeError`` on any input;
and whatever a fast reader (``xapp.e2.fast_e2ap``, ``xapp.e2.fast_kpm``) accepts, the library
(pycrate, asn1tools) must decode to the same value (a mismatch raises AssertionError, a crash).

Usage (libFuzzer flags after the script)::

    python tests/fuzz/fuzz_e2.py -max_total_time=600 -print_final_stats=1 CORPUS_DIR

The first input byte picks the decoder, the rest is the payload. Valid encodings of every kind
are written into an empty ``CORPUS_DIR`` as seeds. Any other exception is a crash (libFuzzer
saves the input as ``crash-<sha1>``). With ``$KDRAN_FUZZ_SUMMARY`` set, the harness keeps a JSON
summary in that file (rewritten every ``SUMMARY_EVERY`` inputs; libFuzzer ends the process without
Python's exit hooks): inputs run, E2DecodeErrors by the exception type the decode boundary
converted (internal failures the boundary masks), and the slowest input's time (ms).
Coverage feedback comes from ``xapp.e2`` and both ASN.1 runtimes (asn1tools, pycrate);
``KDRAN_FUZZ_INSTRUMENT=xapp`` limits it to ``xapp.e2`` (starts in seconds instead of ~20 s; the
bounded CI run uses it).
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import atheris

INSTRUMENTED = ["xapp.e2"] if os.environ.get("KDRAN_FUZZ_INSTRUMENT") == "xapp" else \
    ["xapp.e2", "asn1tools", "pycrate_asn1rt"]

with atheris.instrument_imports(include=INSTRUMENTED):
    from xapp.e2 import (
        E2DecodeError,
        KpmHeader,
        KpmReport,
        MeasValue,
        RicIndication,
        RicRequestId,
        UeId,
        decode_e2ap,
        decode_indication,
        decode_indication_header,
        decode_indication_message,
        encode_e2ap,
        encode_indication_header,
        encode_indication_message,
    )
    from xapp.e2.aper import Unhandled
    from xapp.e2.e2ap import _aper_to_value
    from xapp.e2.fast_e2ap import read_ric_indication
    from xapp.e2.fast_kpm import read_indication_header, read_indication_message
    from xapp.e2.kpm_asn import kpm_decode
    from xapp.e2.measurements import KDRAN_MEASUREMENTS

HEADER = KpmHeader(datetime(2026, 1, 1, tzinfo=UTC))
NAMES = tuple(KDRAN_MEASUREMENTS)


def agreeing(fast: Callable[[bytes], Any], library: Callable[[bytes], Any]
             ) -> Callable[[bytes], object]:
    """A target that runs the fast reader and, when it accepts the input, checks the library
    decodes the same value (``repr`` tells -0.0, NaN and key order apart)."""

    def check(data: bytes) -> object:
        try:
            value = fast(data)
        except Unhandled:
            return None
        try:
            expected = library(data)
        except Exception as exc:  # the fast reader accepted what the library refuses
            raise AssertionError(f"fast reader took {data.hex()}; library: {exc!r}") from exc
        if repr(value) != repr(expected):
            raise AssertionError(f"fast reader {value!r} != library {expected!r}")
        return value

    return check


DECODERS: tuple[tuple[str, Callable[[bytes], object]], ...] = (
    ("indication", lambda b: decode_indication(b, cell_id="00101-000000001",
                                               measurement_names=NAMES)),
    ("indication_unnamed", decode_indication),
    ("e2ap", decode_e2ap),
    ("header", decode_indication_header),
    ("message", lambda b: decode_indication_message(b, HEADER, measurement_names=NAMES)),
    ("indication_library", lambda b: decode_indication(b, measurement_names=NAMES, fast=False)),
    ("agree_e2ap", agreeing(read_ric_indication, lambda b: _aper_to_value(b, False))),
    ("agree_header", agreeing(read_indication_header,
                              lambda b: kpm_decode("E2SM-KPM-IndicationHeader", b))),
    ("agree_message", agreeing(read_indication_message,
                               lambda b: kpm_decode("E2SM-KPM-IndicationMessage", b))),
)
"""The first input byte picks one (modulo their number); the harness's own seeds use indices."""
SUMMARY_EVERY = 2000
MASKED: collections.Counter[str] = collections.Counter()
STATS = {"inputs": 0, "slowest_ms": 0.0}


def seeds() -> list[bytes]:
    """Valid encodings, prefixed with the byte that selects their decoder."""
    values = {n: MeasValue.of(v) for n, v in zip(
        NAMES, (-12.5, -9.0, 900, 3, 40000.5, 3000, 30, None), strict=True)}
    cell = encode_indication_message([KpmReport(HEADER.collection_start, 1000, values)])
    per_ue = encode_indication_message([KpmReport(HEADER.collection_start, 1000, values,
                                                  ue_id=UeId.du(i)) for i in range(2)])
    header = encode_indication_header(HEADER)
    out = []
    for message in (cell, per_ue):
        pdu = encode_e2ap(RicIndication(RicRequestId(1, 2), 2, 1, header, message,
                                        sequence_number=7))
        out += [bytes([0]) + pdu, bytes([1]) + pdu, bytes([2]) + pdu, bytes([4]) + message,
                bytes([5]) + pdu, bytes([6]) + pdu, bytes([8]) + message]
    out += [bytes([3]) + header, bytes([7]) + header]
    return out


def test_one_input(data: bytes) -> None:
    """libFuzzer's entry point: decode; only ``E2DecodeError`` may escape."""
    if not data:
        return
    name, decoder = DECODERS[data[0] % len(DECODERS)]
    start = time.perf_counter()
    try:
        decoder(data[1:])
    except E2DecodeError as exc:
        if exc.__cause__ is not None:
            MASKED[f"{name}:{type(exc.__cause__).__name__}"] += 1
    STATS["inputs"] += 1
    STATS["slowest_ms"] = max(STATS["slowest_ms"], (time.perf_counter() - start) * 1e3)
    if STATS["inputs"] % SUMMARY_EVERY == 0:
        write_summary()


def write_summary() -> None:
    """Rewrite ``$KDRAN_FUZZ_SUMMARY`` (when set) with the counts so far."""
    path = os.environ.get("KDRAN_FUZZ_SUMMARY")
    if path:
        Path(path).write_text(json.dumps({"inputs": STATS["inputs"],
                                          "slowest_ms": round(STATS["slowest_ms"], 2),
                                          "masked": dict(MASKED.most_common())}, indent=1))


def main(argv: list[str]) -> None:
    corpus = [a for a in argv[1:] if not a.startswith("-")]
    if corpus:
        directory = Path(corpus[0])
        directory.mkdir(parents=True, exist_ok=True)
        if not any(directory.iterdir()):
            for i, seed in enumerate(seeds()):
                (directory / f"seed-{i}").write_bytes(seed)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
