"""``kdran bench flood``: the xApp's KPM path under a flood of cells.

``cells`` cells each send one E2SM-KPM Format 1 RICindication per ``period_s`` (1 s in a RIC).
The benchmark feeds encoded indications to ``Controller.on_indication`` — the entry point the RMR
and in-process transports call, with the real decoder (on the xApp's decode path, ``decode_path``:
the fast readers unless ``KDRAN_E2_DECODER=library``), drift detectors, policy, registry (SDL fake
backend) and metrics — as fast as one thread can for ``seconds`` of wall time, and reports:

- the sustained rate (indications/s) against the rate the cells produce (``cells / period_s``):
  ``keeps_up``, ``headroom`` (sustained / needed) and, when it does not keep up, ``lag_s_per_s``
  (seconds of backlog that accrue per second of real time);
- per-indication latency p50/p99 (µs);
- memory: resident set size at the start and end (MB), drift streams tracked (max), streams
  evicted. With ``churn`` > 0, that fraction of the cells is replaced by new cells every period
  (old subscriptions deleted), so the number of cells ever seen grows while the number tracked
  must stay bounded by ``drift.stream_idle_s`` eviction.

Time inside the xApp is simulated (one period per round over the cells), so eviction after
``stream_idle_s`` happens in a short run. Encoding is kept out of the measurement: a pool of
``POOL`` indications with different NMSE values is encoded up front and cells take turns over it
(the xApp reads the cell from the subscription, as in the RIC).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from xapp.config import Controls, DriftConfig, PolicyConfig
from xapp.controller import Controller, Subscribed
from xapp.e2 import (
    KpmHeader,
    KpmReport,
    MeasValue,
    NrCgi,
    RicIndication,
    RicRequestId,
    encode_e2ap,
    encode_indication_header,
    encode_indication_message,
)
from xapp.e2 import measurements as m
from xapp.e2.decoder_path import DEFAULT_PATH
from xapp.launch_local import LocalJobLauncher
from xapp.metrics import XappMetrics
from xapp.registry import Registry, open_sdl

POOL = 64
CELLS_PER_NODE = 64
_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FloodResult:
    """What ``run_flood`` measured (JSON keys of ``--json``)."""

    cells: int
    period_s: float
    seconds: float
    indications: int
    indications_per_s: float
    needed_per_s: float
    keeps_up: bool
    headroom: float
    lag_s_per_s: float
    p50_us: float
    p99_us: float
    decode_failures: int
    rss_start_mb: float
    rss_end_mb: float
    streams_max: int
    streams_end: int
    cells_seen: int
    evicted: int
    decode_path: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def indication_pool(size: int = POOL, seed: int = 0) -> list[bytes]:
    """``size`` encoded cell-level RICindications (all ``KDRAN_MEASUREMENTS``, NMSE around
    -12 dB with 0.5 dB noise, healthy link counters)."""
    rng = np.random.default_rng(seed)
    header = encode_indication_header(KpmHeader(_START))
    pool = []
    for i in range(size):
        nmse = float(-12.0 + 0.5 * rng.standard_normal())
        values = {m.CHPRED_NMSE_DB_MEAN: round(nmse, 3), m.CHPRED_NMSE_DB_P90: round(nmse + 3, 3),
                  m.CHPRED_COUNT: 1000, m.CHPRED_FALLBACK: int(rng.integers(0, 5)),
                  m.DRB_UE_THP_DL: 50_000.0, m.TB_TOT_NBR_DL: 10_000,
                  m.TB_ERR_TOTAL_NBR_DL: int(rng.integers(50, 150)), m.RRU_PRB_USED_DL: 40}
        report = KpmReport(_START, 1000, {k: MeasValue.of(v) for k, v in values.items()})
        pool.append(encode_e2ap(RicIndication(RicRequestId(1, 1), 2, 1, header,
                                              encode_indication_message([report]),
                                              sequence_number=i)))
    return pool


def flood_controls(stream_idle_s: float) -> Controls:
    """Defaults, with eviction after ``stream_idle_s`` and no job launches (budget 0: a drift is
    decided and suppressed, as the policy would under a full budget)."""
    base = Controls()
    return replace(base, drift=replace(DriftConfig(), stream_idle_s=stream_idle_s),
                   policy=replace(PolicyConfig(), max_concurrent_jobs=0))


def _rss_mb() -> float:
    """Resident set size of this process now, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return math.nan


class _Cells:
    """Cell slots whose identity changes with churn; keeps the subscription table in step."""

    def __init__(self, controller: Controller, cells: int, churn: float) -> None:
        self.controller, self.cells = controller, cells
        self.lifetime = max(1, round(1.0 / churn)) if churn > 0 else 0
        self.current: list[int] = [-1] * cells
        self.seen = 0

    def identity(self, slot: int, period: int) -> int:
        """The cell id slot ``slot`` has in ``period`` (a new one every ``lifetime`` periods,
        staggered over the slots)."""
        generation = (period + slot) // self.lifetime if self.lifetime else 0
        return slot + self.cells * generation

    def sub_id(self, slot: int, period: int) -> int:
        """The subscription id for the slot's current cell (subscribing a new cell and deleting
        the one it replaces)."""
        cell = self.identity(slot, period)
        if cell != self.current[slot]:
            table = self.controller.subscriptions
            if self.current[slot] >= 0:
                table.remove(self.current[slot] + 1)
            nci = NrCgi("00101", cell + 1)
            table.add(cell + 1, Subscribed(f"gnb-{slot // CELLS_PER_NODE}", str(nci),
                                           tuple(m.KDRAN_MEASUREMENTS)))
            self.current[slot] = cell
            self.seen += 1
        return cell + 1


def run_flood(cells: int, seconds: float, period_s: float = 1.0, churn: float = 0.0,
              stream_idle_s: float = 10.0) -> FloodResult:
    """Feed ``cells`` cells' indications to a controller for ``seconds`` of wall time."""
    if cells < 1 or seconds <= 0 or period_s <= 0 or not 0 <= churn <= 1:
        raise ValueError("need cells >= 1, seconds > 0, period_s > 0 and 0 <= churn <= 1")
    clock = {"now": 0.0}
    controls = flood_controls(stream_idle_s)
    metrics = XappMetrics()
    controller = Controller(controls, Registry.open(open_sdl(), "flood"),
                            LocalJobLauncher(["false"], 1.0), _no_dapp, metrics,
                            clock=lambda: clock["now"])
    pool = indication_pool()
    slots = _Cells(controller, cells, churn)
    latencies: list[float] = []
    streams_max = 0
    rss_start = _rss_mb()
    start = time.perf_counter()
    deadline = start + seconds
    period = sent = 0
    while time.perf_counter() < deadline:
        clock["now"] = period * period_s
        for slot in range(cells):
            sub_id = slots.sub_id(slot, period)
            payload = pool[(slot * 7 + period) % len(pool)]
            t0 = time.perf_counter()
            controller.on_indication(payload, sub_id)
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            sent += 1
            if t1 >= deadline:
                break
        streams_max = max(streams_max, len(controller.drift.streams))
        period += 1
    elapsed = time.perf_counter() - start
    rate = sent / elapsed
    needed = cells / period_s
    lat = np.asarray(latencies) * 1e6
    failed = metrics.registry.get_sample_value("kdran_xapp_kpm_reports_total",
                                               {"outcome": "failed"}) or 0.0
    return FloodResult(
        cells=cells, period_s=period_s, seconds=round(elapsed, 3), indications=sent,
        indications_per_s=round(rate, 1), needed_per_s=needed, keeps_up=rate >= needed,
        headroom=round(rate / needed, 3), lag_s_per_s=round(max(0.0, needed / rate - 1), 3),
        p50_us=round(float(np.percentile(lat, 50)), 1),
        p99_us=round(float(np.percentile(lat, 99)), 1), decode_failures=int(failed),
        rss_start_mb=round(rss_start, 1), rss_end_mb=round(_rss_mb(), 1),
        streams_max=streams_max, streams_end=len(controller.drift.streams),
        cells_seen=slots.seen, evicted=slots.seen - len(controller.drift.streams),
        decode_path=DEFAULT_PATH)


def _no_dapp(endpoint: Any) -> Any:
    raise RuntimeError(f"the flood benchmark has no dApp ({endpoint.name})")
