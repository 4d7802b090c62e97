"""Downlink traffic KPMs that degrade with the channel-prediction error, and the DU's KPM source.

:class:`TrafficModel` maps a cell's online prediction NMSE to link-level KPMs over one reporting
period. The model (deterministic expected values, no random draws):

1. CSI error as interference. Precoding on a predicted channel with linear NMSE ``e`` leaves the
   useful power ``(1 - e)`` and turns ``e`` of it into self-interference, so the effective SINR
   is ``g = S (1 - e) / (1 + S e)`` with ``S`` the post-beamforming SNR (``snr_db``) and
   ``e = 10^(NMSE_dB / 10)`` clipped to ``[0, 1)``.
2. Link adaptation picks the MCS for the SINR ``g_ref`` expected at ``reference_nmse_db`` (a
   healthy predictor): spectral efficiency ``min(se_max, eta * log2(1 + g_ref))`` bit/s/Hz.
3. BLER is a logistic waterfall around that operating point, at the usual 10 % target:
   ``BLER = 1 / (1 + 9 exp(k (g_dB - g_ref_dB)))`` with slope ``k`` per dB. A worse NMSE lowers
   ``g`` below ``g_ref`` and the BLER climbs (e.g. 3 dB short at k = 1/dB: 69 %).
4. Goodput per PRB = ``12 * scs * SE * (1 - BLER)``. The cell's UEs offer ``offered_mbps_per_ue``;
   PRBs used = ``min(n_prb, demand / goodput per PRB)`` (retransmissions cost PRBs), throughput =
   PRBs used x goodput per PRB.

KPMs per period: ``DRB.UEThpDl`` = cell throughput / UEs (kbit/s); ``RRU.PrbUsedDl`` = mean PRBs
used; ``TB.TotNbrDl`` = slots in the period x ``tb_per_slot`` x PRB utilisation (rounded);
``TB.ErrTotalNbrDl`` = round(TB.TotNbrDl x BLER). Without an NMSE (nothing scored yet) the
link-level KPMs are noValue.

:class:`DuMetricsSource` is the ``sim.e2node.MetricsSource`` of the emulated DU: once per call it
reads the dApp's ``GetStatus`` and, per cell (the dApp's UE group named ``str(cell)``), relays
``VS.ChPred.NmseDb.Mean``/``P90`` (the group's rolling online NMSE, dB) and, as deltas since the
previous call, ``VS.ChPred.Count`` (predictions served) and ``VS.ChPred.Fallback``; the traffic
KPMs come from :class:`TrafficModel` at the group's NMSE.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sim.e2node import CellSnapshot, MeasNumber
from xapp.e2 import NrCgi
from xapp.e2 import measurements as m

log = logging.getLogger(__name__)

BLER_TARGET = 0.1
SUBCARRIERS_PER_PRB = 12


@dataclass(frozen=True)
class TrafficConfig:
    """Cell and link parameters (see the module docstring). Defaults: 40 MHz at 30 kHz SCS."""

    n_prb: int = 106
    scs_hz: float = 30e3
    snr_db: float = 20.0
    reference_nmse_db: float = -15.0
    bler_slope_per_db: float = 1.0
    se_max: float = 7.4
    eta: float = 0.75
    offered_mbps_per_ue: float = 20.0
    tb_per_slot: int = 4

    def __post_init__(self) -> None:
        if self.n_prb < 1 or self.scs_hz <= 0 or self.tb_per_slot < 1:
            raise ValueError("n_prb, scs_hz and tb_per_slot must be positive")
        if self.bler_slope_per_db <= 0 or not 0 < self.eta <= 1 or self.se_max <= 0:
            raise ValueError("bler_slope_per_db and se_max must be positive, eta in (0, 1]")
        if self.offered_mbps_per_ue < 0:
            raise ValueError("offered_mbps_per_ue must be >= 0")


@dataclass(frozen=True)
class TrafficKpis:
    """One cell over one period: BLER (0..1), effective SINR (dB), the four KPMs."""

    bler: float
    sinr_db: float
    ue_thp_dl_kbps: float
    prb_used_dl: float
    tb_total: int
    tb_errors: int

    def measurements(self) -> dict[str, MeasNumber]:
        """The KPM values by measurement name."""
        return {m.DRB_UE_THP_DL: self.ue_thp_dl_kbps, m.RRU_PRB_USED_DL: self.prb_used_dl,
                m.TB_TOT_NBR_DL: self.tb_total, m.TB_ERR_TOTAL_NBR_DL: self.tb_errors}


def _db(x: float) -> float:
    return 10.0 * math.log10(x) if x > 0 else -math.inf


class TrafficModel:
    """NMSE (dB) -> link KPMs for one cell and period (see the module docstring)."""

    def __init__(self, config: TrafficConfig | None = None) -> None:
        self.config = config or TrafficConfig()
        self.reference_sinr_db = self.sinr_db(self.config.reference_nmse_db)
        ref = 10.0 ** (self.reference_sinr_db / 10.0)
        self.spectral_efficiency = min(self.config.se_max, self.config.eta * math.log2(1 + ref))

    def sinr_db(self, nmse_db: float) -> float:
        """Effective SINR (dB) after precoding on a channel predicted with ``nmse_db``."""
        snr = 10.0 ** (self.config.snr_db / 10.0)
        e = min(max(10.0 ** (nmse_db / 10.0), 0.0), 1.0 - 1e-9)
        return _db(snr * (1.0 - e) / (1.0 + snr * e))

    def bler(self, nmse_db: float) -> float:
        """Block error rate (0..1) at the MCS chosen for the reference NMSE."""
        delta = self.sinr_db(nmse_db) - self.reference_sinr_db
        exponent = min(self.config.bler_slope_per_db * delta, 700.0)
        odds = (1.0 - BLER_TARGET) / BLER_TARGET
        return 1.0 / (1.0 + odds * math.exp(exponent))

    def kpis(self, nmse_db: float, n_ues: int, period_s: float) -> TrafficKpis:
        """KPMs of a cell with ``n_ues`` UEs over ``period_s`` seconds at ``nmse_db``."""
        cfg = self.config
        bler = self.bler(nmse_db)
        goodput_per_prb = SUBCARRIERS_PER_PRB * cfg.scs_hz * self.spectral_efficiency * (1 - bler)
        demand_bps = n_ues * cfg.offered_mbps_per_ue * 1e6
        prbs = min(float(cfg.n_prb), demand_bps / goodput_per_prb) if goodput_per_prb > 0 else (
            float(cfg.n_prb) if demand_bps > 0 else 0.0)
        throughput_bps = prbs * goodput_per_prb
        slots = period_s * cfg.scs_hz / 15e3 * 1000.0
        tb_total = round(slots * cfg.tb_per_slot * prbs / cfg.n_prb)
        return TrafficKpis(bler, self.sinr_db(nmse_db),
                           throughput_bps / max(n_ues, 1) / 1e3, prbs, tb_total,
                           round(tb_total * bler))


class StatusProvider(Protocol):
    """Anything with the dApp client's ``status()`` (a ``StatusResponse``)."""

    def status(self) -> Any:
        ...


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class ChPredDeltas:
    """Per-key ``VS.ChPred.Count`` / ``VS.ChPred.Fallback`` deltas from the dApp's cumulative
    prediction and fallback counters (a counter that went backwards, e.g. after a dApp restart,
    gives 0, not a negative count). The first call for a key counts from 0 when
    ``count_from_zero``, else from the values it sees (no delta yet)."""

    def __init__(self, count_from_zero: bool) -> None:
        self.count_from_zero = count_from_zero
        self._previous: dict[str, tuple[int, int]] = {}

    def __call__(self, key: str, predictions: int, fallbacks: int) -> dict[str, MeasNumber]:
        start = (0, 0) if self.count_from_zero else (predictions, fallbacks)
        last_p, last_f = self._previous.get(key, start)
        self._previous[key] = (predictions, fallbacks)
        return {m.CHPRED_COUNT: max(0, predictions - last_p),
                m.CHPRED_FALLBACK: max(0, fallbacks - last_f)}


class DuMetricsSource:
    """``source(now) -> [CellSnapshot]`` for ``sim.e2node.E2Node`` (see the module docstring).

    ``ues_per_cell`` gives each served cell and its UE count; ``period_s`` is the reporting
    period the traffic KPMs cover. A failed ``GetStatus`` gives noValue for the dApp-derived
    KPMs of that period (and is counted in ``failed_status``). ``last_status`` is the status the
    latest snapshot was built from."""

    def __init__(self, dapp: StatusProvider, ues_per_cell: Callable[[], Mapping[NrCgi, int]],
                 traffic: TrafficModel | None = None, period_s: float = 1.0) -> None:
        self.dapp = dapp
        self.ues_per_cell = ues_per_cell
        self.traffic = traffic or TrafficModel()
        self.period_s = period_s
        self.last_status: Any = None
        self.failed_status = 0
        self._deltas = ChPredDeltas(count_from_zero=True)
        self._lock = threading.Lock()

    def __call__(self, now: datetime) -> Sequence[CellSnapshot]:
        with self._lock:
            try:
                status = self.dapp.status()
            except Exception as exc:  # the E2 node keeps reporting while the dApp is away
                log.warning("dApp GetStatus failed: %s", exc)
                self.failed_status += 1
                status = None
            self.last_status = status
            groups = {g.group: g for g in status.groups} if status is not None else {}
            return [self._cell(cell, n, groups.get(str(cell)))
                    for cell, n in self.ues_per_cell().items()]

    def _cell(self, cell: NrCgi, n_ues: int, group: Any) -> CellSnapshot:
        values: dict[str, MeasNumber] = dict.fromkeys(
            (m.CHPRED_NMSE_DB_MEAN, m.CHPRED_NMSE_DB_P90, m.CHPRED_COUNT, m.CHPRED_FALLBACK,
             m.DRB_UE_THP_DL, m.RRU_PRB_USED_DL, m.TB_TOT_NBR_DL, m.TB_ERR_TOTAL_NBR_DL))
        if group is None:
            return CellSnapshot(cell, values)
        values.update(self._deltas(str(cell), int(group.predictions), int(group.fallbacks)))
        nmse = _finite(group.nmse_db) if group.scored else None
        values[m.CHPRED_NMSE_DB_MEAN] = nmse
        values[m.CHPRED_NMSE_DB_P90] = _finite(group.nmse_db_p90) if group.scored else None
        if nmse is not None:
            values.update(self.traffic.kpis(nmse, n_ues, self.period_s).measurements())
        return CellSnapshot(cell, values)
