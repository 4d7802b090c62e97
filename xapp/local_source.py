"""KPM values for the embedded E2 node, read from the dApps' ``GetStatus`` (``--mode local``).

Without a DU emulator the xApp's own process hosts the E2 node; its ``MetricsSource`` asks each
cell's dApps for their status once per reporting period: the active model's rolling online NMSE
(``VS.ChPred.NmseDb.Mean``/``P90``, dB) and, as deltas since the previous period, the predictions
served (``VS.ChPred.Count``) and the fallbacks (``VS.ChPred.Fallback``). Link-level KPMs (BLER,
throughput, PRBs) have no source here and are reported as noValue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sim.e2node import CellSnapshot, MeasNumber
from sim.traffic import ChPredDeltas
from xapp.config import Controls
from xapp.controller import Controller
from xapp.e2 import measurements as m
from xapp.subscription import parse_cell

log = logging.getLogger("kdran.xapp.local")


class DappStatusSource:
    """``source(now) -> [CellSnapshot]`` over the dApps that serve each configured node."""

    def __init__(self, controls: Controls, controller: Controller) -> None:
        self.controls = controls
        self.controller = controller
        self._deltas = ChPredDeltas(count_from_zero=False)

    def _values(self, meid: str) -> dict[str, MeasNumber]:
        nmse = p90 = None
        predictions = fallbacks = 0
        for endpoint in self.controls.dapps_for_node(meid):
            try:
                status: Any = self.controller.dapp_client(endpoint).status()
            except Exception as exc:  # an unreachable dApp reports noValue, not a crash
                log.warning("dApp status failed", extra={"fields": {"dapp": endpoint.name,
                                                                    "error": str(exc)}})
                continue
            for model in status.models:
                if model.role == "active" and model.scored:
                    nmse, p90 = model.nmse_db, model.nmse_db_p90
            predictions += int(status.predictions)
            fallbacks += int(status.fallbacks)
        return {m.CHPRED_NMSE_DB_MEAN: nmse, m.CHPRED_NMSE_DB_P90: p90,
                **self._deltas(meid, predictions, fallbacks)}

    def __call__(self, now: datetime) -> Sequence[CellSnapshot]:
        snapshots: list[CellSnapshot] = []
        for node in self.controls.e2.nodes:
            values = self._values(node.meid)
            snapshots.extend(CellSnapshot(parse_cell(c), values) for c in node.cells)
        return snapshots
