"""``kdran bench e2``: how many KPM indications one core decodes per second, on both paths.

Each timed operation is the xApp's per-message work: E2AP RICindication decode, then KPM
IndicationHeader and IndicationMessage decode into typed :class:`KpmReport` values. Two paths:
``library`` (pycrate for E2AP, asn1tools with constraint checks for KPM: the reference) and
``fast`` (the fast readers of :mod:`xapp.e2.fast_e2ap` and :mod:`xapp.e2.fast_kpm`, falling back
to the libraries), which the xApp uses unless ``KDRAN_E2_DECODER=library``. Two payloads: a
cell-level report (Format 1, the 8 kdran measurements) and a 64-UE report (Format 3, the same 8
measurements per UE). On the fast path a subscription's repeated measurement information list
is decoded once (steady state, what is timed); ``cell_cold_median_us`` times the first
indication of a subscription. Single thread, so "per second" is per core.
"""

from __future__ import annotations

import cProfile
import io
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from xapp.e2.decoder_path import FAST, LIBRARY, use_fast
from xapp.e2.e2ap import RicIndication, RicRequestId, decode_e2ap, encode_e2ap
from xapp.e2.fast_kpm import clear_cache
from xapp.e2.ids import UeId
from xapp.e2.indication import decode_indication
from xapp.e2.kpm_asn import compiled_kpm
from xapp.e2.kpm_codec import (
    decode_indication_header,
    decode_indication_message,
    encode_indication_header,
    encode_indication_message,
)
from xapp.e2.kpm_model import KpmHeader, KpmReport, MeasValue
from xapp.e2.measurements import KDRAN_MEASUREMENTS

UE_COUNT: Final = 64
BATCH: Final = 50
"""Messages per timed batch; per-message µs is batch time / BATCH."""
_START: Final = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _values(seed: int) -> dict[str, MeasValue]:
    """Plausible values: NMSE in dB as reals, counters as integers, throughput kbit/s as real."""
    raw: tuple[int | float, ...] = (-14.25 - seed % 7, -9.5 - seed % 5, 2000 + seed, seed % 13,
                                    48_000.5 + seed, 4000 + seed, 40 + seed % 9, 37 + seed % 60)
    return {name: MeasValue.of(v) for name, v in zip(KDRAN_MEASUREMENTS, raw, strict=True)}


def _indication(reports: list[KpmReport]) -> bytes:
    header = encode_indication_header(KpmHeader(_START, sender_name="kdran-bench"))
    return encode_e2ap(RicIndication(RicRequestId(1001, 7), 2, 1, header,
                                     encode_indication_message(reports), sequence_number=1))


def cell_indication() -> bytes:
    """RICindication with a cell-level Format 1 message (one record of 8 measurements)."""
    return _indication([KpmReport(_START, 1000, _values(3))])


def ue64_indication() -> bytes:
    """RICindication with a Format 3 message: 64 UEs x 8 measurements."""
    return _indication([KpmReport(_START, 1000, _values(i), ue_id=UeId.du(i))
                        for i in range(UE_COUNT)])


@dataclass(frozen=True)
class Timing:
    """Decode throughput (messages/s) and per-message latency over batches (µs)."""

    per_s: float
    median_us: float
    p99_us: float
    messages: int


def time_decode(operation: Callable[[], object], seconds: float, batch: int = BATCH) -> Timing:
    """Run ``operation`` in batches of ``batch`` for about ``seconds`` (at least 3 batches)."""
    per_message_us: list[float] = []
    total = 0.0
    while total < seconds or len(per_message_us) < 3:
        start = time.perf_counter()
        for _ in range(batch):
            operation()
        elapsed = time.perf_counter() - start
        total += elapsed
        per_message_us.append(elapsed / batch * 1e6)
    ordered = sorted(per_message_us)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    messages = batch * len(per_message_us)
    return Timing(messages / total, statistics.median(per_message_us), p99, messages)


def _stage_us(payload: bytes, seconds: float, fast: bool) -> dict[str, float]:
    """Median µs of each stage for ``payload``: E2AP decode, KPM header, KPM message."""
    pdu = decode_e2ap(payload, fast=fast)
    assert isinstance(pdu, RicIndication)
    header = decode_indication_header(pdu.header, fast=fast)
    stages: dict[str, Callable[[], object]] = {
        "e2ap_us": lambda: decode_e2ap(payload, fast=fast),
        "kpm_header_us": lambda: decode_indication_header(pdu.header, fast=fast),
        "kpm_message_us": lambda: decode_indication_message(pdu.message, header, fast=fast),
    }
    return {name: time_decode(op, seconds / 3, batch=20).median_us for name, op in stages.items()}


def _profiled(payload: bytes, fast: bool, count: int) -> cProfile.Profile:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        decode_indication(payload, fast=fast)
    profiler.disable()
    return profiler


def profile_cell(count: int = 300, top: int = 15, fast: bool | None = None) -> str:
    """cProfile of ``count`` cell-level decodes on the xApp's path (``fast=None``) or the given
    one, the ``top`` functions by own time."""
    out = io.StringIO()
    stats = pstats.Stats(_profiled(cell_indication(), use_fast(fast), count), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def _where(filename: str) -> str:
    """``xapp/e2/aper.py`` or ``asn1tools/codecs/ber.py``: the path from the package root."""
    path = Path(filename)
    roots = [root for root in (*(Path(p) for p in sys.path if p), Path.cwd())
             if path.is_relative_to(root) and root != path.parent]
    if not roots:
        return path.name
    return path.relative_to(max(roots, key=lambda root: len(root.parts))).as_posix()


def profile_summary(fast: bool, count: int = 300, top: int = 8) -> dict[str, Any]:
    """What bounds cell-level decoding on one path: each source file's share of the own time
    (``by_file``, shares summing to 1) and the ``top`` functions (``share``, calls per
    indication) under cProfile, which inflates the many small calls."""
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = \
        pstats.Stats(_profiled(cell_indication(), fast, count)).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values()) or 1.0
    by_file: dict[str, float] = {}
    for (filename, _, _), entry in raw.items():
        name = _where(filename) if filename != "~" else "builtins"
        by_file[name] = by_file.get(name, 0.0) + entry[2] / total
    ranked = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return {
        "by_file": {k: round(v, 3) for k, v in sorted(by_file.items(), key=lambda kv: -kv[1])
                    if v >= 0.01},
        "top": [{"function": f"{_where(f) if f != '~' else 'builtins'}:{line}({func})",
                 "share": round(entry[2] / total, 3),
                 "calls_per_indication": round(entry[1] / count, 1)}
                for (f, line, func), entry in ranked],
    }


def _path_run(fast: bool, cell: bytes, ue64: bytes, seconds: float) -> dict[str, Any]:
    """Throughput and latency of one decode path on both payloads, and its cell stages."""
    cell_t = time_decode(lambda: decode_indication(cell, fast=fast), seconds)
    ue_t = time_decode(lambda: decode_indication(ue64, fast=fast), seconds, batch=2)
    result: dict[str, Any] = {
        "cell_reports_per_s": round(cell_t.per_s, 1),
        "ue64_reports_per_s": round(ue_t.per_s, 2),
        "ue64_ue_reports_per_s": round(ue_t.per_s * UE_COUNT, 1),
        "cell_median_us": round(cell_t.median_us, 1),
        "cell_p99_us": round(cell_t.p99_us, 1),
        "ue64_median_us": round(ue_t.median_us, 1),
        "ue64_p99_us": round(ue_t.p99_us, 1),
        "cell_stages_median_us": {k: round(v, 1)
                                  for k, v in _stage_us(cell, seconds, fast).items()},
        "messages_timed": {"cell": cell_t.messages, "ue64": ue_t.messages},
    }
    if fast:
        def cold() -> None:
            clear_cache()
            decode_indication(cell, fast=True)

        result["cell_cold_median_us"] = round(time_decode(cold, seconds / 3).median_us, 1)
    return result


_XAPP_KEYS: Final = ("cell_reports_per_s", "ue64_reports_per_s", "ue64_ue_reports_per_s",
                     "cell_median_us", "cell_p99_us", "ue64_median_us", "ue64_p99_us",
                     "cell_stages_median_us", "messages_timed")
"""Top-level keys (DESIGN.md section 8 and the earlier detail) measuring the xApp's path."""


def run(seconds: float) -> dict[str, Any]:
    """The whole benchmark; returns the JSON object: the section 8 keys for the path the xApp
    uses (``decode_path``), both paths in full under ``paths``, the fast path's profile."""
    compile_s = compiled_kpm().compile_seconds
    cell, ue64 = cell_indication(), ue64_indication()
    paths = {name: _path_run(name == FAST, cell, ue64, seconds) for name in (FAST, LIBRARY)}
    xapp_path = FAST if use_fast(None) else LIBRARY
    return {
        **{key: paths[xapp_path][key] for key in _XAPP_KEYS},
        "decode_path": xapp_path,
        "paths": paths,
        "fast_speedup": {
            payload: round(paths[LIBRARY][f"{payload}_median_us"]
                           / paths[FAST][f"{payload}_median_us"], 1)
            for payload in ("cell", "ue64")},
        "fast_profile": profile_summary(fast=True),
        "cell_bytes": len(cell),
        "ue64_bytes": len(ue64),
        "kpm_compile_s": round(compile_s, 3),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()} "
                   f"python {platform.python_version()}",
    }
