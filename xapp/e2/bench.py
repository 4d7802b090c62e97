"""``kdran bench e2``: how many KPM indications one core decodes per second.

Each timed operation is the xApp's per-message work: E2AP RICindication decode (pycrate), then
KPM IndicationHeader and IndicationMessage decode (asn1tools, constraints checked) into typed
:class:`KpmReport` values. Two payloads: a cell-level report (Format 1, the 8 kdran measurements)
and a 64-UE report (Format 3, the same 8 measurements per UE). Single thread, so "per second"
is per core.
"""

from __future__ import annotations

import cProfile
import io
import platform
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from xapp.e2.e2ap import RicIndication, RicRequestId, decode_e2ap, encode_e2ap
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


def _stage_us(payload: bytes, seconds: float) -> dict[str, float]:
    """Median µs of each stage for ``payload``: E2AP decode, KPM header, KPM message."""
    pdu = decode_e2ap(payload)
    assert isinstance(pdu, RicIndication)
    header = decode_indication_header(pdu.header)
    stages: dict[str, Callable[[], object]] = {
        "e2ap_us": lambda: decode_e2ap(payload),
        "kpm_header_us": lambda: decode_indication_header(pdu.header),
        "kpm_message_us": lambda: decode_indication_message(pdu.message, header),
    }
    return {name: time_decode(op, seconds / 3, batch=20).median_us for name, op in stages.items()}


def profile_cell(count: int = 300, top: int = 15) -> str:
    """cProfile of ``count`` cell-level decodes, the ``top`` functions by own time."""
    payload = cell_indication()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        decode_indication(payload)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def run(seconds: float) -> dict[str, Any]:
    """The whole benchmark; returns the JSON object (DESIGN.md section 8 keys plus detail)."""
    compile_s = compiled_kpm().compile_seconds
    cell, ue64 = cell_indication(), ue64_indication()
    cell_t = time_decode(lambda: decode_indication(cell), seconds)
    ue_t = time_decode(lambda: decode_indication(ue64), seconds, batch=2)
    return {
        "cell_reports_per_s": round(cell_t.per_s, 1),
        "ue64_reports_per_s": round(ue_t.per_s, 2),
        "ue64_ue_reports_per_s": round(ue_t.per_s * UE_COUNT, 1),
        "cell_median_us": round(cell_t.median_us, 1),
        "cell_p99_us": round(cell_t.p99_us, 1),
        "ue64_median_us": round(ue_t.median_us, 1),
        "ue64_p99_us": round(ue_t.p99_us, 1),
        "cell_bytes": len(cell),
        "ue64_bytes": len(ue64),
        "cell_stages_median_us": {k: round(v, 1) for k, v in _stage_us(cell, seconds).items()},
        "kpm_compile_s": round(compile_s, 3),
        "messages_timed": {"cell": cell_t.messages, "ue64": ue_t.messages},
        "machine": f"{platform.machine()} {platform.processor() or platform.system()} "
                   f"python {platform.python_version()}",
    }
