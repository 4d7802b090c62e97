"""The emulated DU's E2 node: KPM reports of the DU's cells from the dApp's ``GetStatus``.

:func:`start_du_e2_node` wires the pieces ``kdran sim du --e2`` needs for the DU's lifetime: an
:class:`~sim.e2node.E2Node` serving the DU's cells, fed by a :class:`~sim.traffic.DuMetricsSource`
(the dApp's per-cell online NMSE, prediction and fallback counts, and the traffic model's
throughput/BLER/PRB KPMs for the DU's UEs per cell), ticked by an :class:`~sim.e2node.E2NodeRunner`
against the wall clock, over any :class:`~sim.transport.E2Transport`: RMR in a RIC
(:func:`open_rmr_transport`), the in-process pair in tests. The returned :class:`DuE2Node`
handle gives a thread-safe :class:`E2Stats` snapshot for status lines and stops the runner and
closes the transport together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from sim.e2node import KPM_RAN_FUNCTION_ID, E2Node, E2NodeRunner, MetricsSource
from sim.traffic import DuMetricsSource, StatusProvider, TrafficModel
from sim.transport import DEFAULT_E2_PORT, E2Transport, TransportError
from xapp.e2 import NrCgi
from xapp.e2.measurements import KDRAN_MEASUREMENTS

DEFAULT_TICK_S: Final = 0.05
"""Seconds between E2 node ticks (inbox handled, due indications sent)."""


class ServedCells(Protocol):
    """What the E2 node needs of the DU (``sim.du.Du`` has both)."""

    cells: tuple[NrCgi, ...]

    def ues_per_cell(self) -> dict[NrCgi, int]:
        """Number of UEs each cell serves."""
        ...


class E2Unavailable(Exception):
    """The requested E2 transport cannot be opened; the message says what is missing."""


@dataclass(frozen=True)
class E2Stats:
    """E2 node counters: active subscriptions (RIC request ids with an admitted action) and
    RICindications sent since the start."""

    subscriptions: int
    indications_sent: int


class _CountingE2Node(E2Node):
    """An :class:`E2Node` that publishes :class:`E2Stats` after every tick, so another thread
    (the status line) can read them while the runner's thread changes the subscriptions."""

    def __init__(self, transport: E2Transport, cells: Sequence[NrCgi], source: MetricsSource,
                 *, ran_function_id: int, offered: Collection[str]) -> None:
        super().__init__(transport, cells, source, ran_function_id=ran_function_id,
                         offered=offered)
        self._stats_lock = threading.Lock()
        self._stats = E2Stats(0, 0)

    def tick(self, now: datetime) -> int:
        sent = super().tick(now)
        stats = E2Stats(len(self.subscriptions), self.indications_sent)
        with self._stats_lock:
            self._stats = stats
        return sent

    def stats(self) -> E2Stats:
        with self._stats_lock:
            return self._stats


class DuE2Node:
    """A running DU E2 node: the node, its metrics source, runner and transport."""

    def __init__(self, node: _CountingE2Node, source: DuMetricsSource, runner: E2NodeRunner,
                 transport: E2Transport) -> None:
        self.node = node
        self.source = source
        self.runner = runner
        self.transport = transport

    def stats(self) -> E2Stats:
        """Subscriptions and indications as of the last tick (thread-safe)."""
        return self.node.stats()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop ticking, then close the transport (idempotent)."""
        self.runner.stop(timeout_s)
        self.transport.close()

    def __enter__(self) -> DuE2Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_du_e2_node(du: ServedCells, dapp: StatusProvider, transport: E2Transport, *,
                     ran_function_id: int = KPM_RAN_FUNCTION_ID,
                     traffic: TrafficModel | None = None, period_s: float = 1.0,
                     tick_s: float = DEFAULT_TICK_S,
                     offered: Collection[str] = KDRAN_MEASUREMENTS,
                     clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> DuE2Node:
    """Start the E2 node of ``du``'s cells on ``transport`` (the returned handle owns it).

    ``dapp`` answers ``status()`` (a ``DappClient``; the dApp's UE groups are the cells);
    ``period_s`` is the period the traffic KPMs (``DRB.UEThpDl``, ``TB.*``, ``RRU.PrbUsedDl``)
    describe, normally the xApp's reporting period; ``tick_s`` the runner's tick in seconds;
    ``clock`` the UTC wall clock that schedules reports and stamps their headers.
    """
    ues: Callable[[], Mapping[NrCgi, int]] = du.ues_per_cell
    source = DuMetricsSource(dapp, ues, traffic, period_s=period_s)
    node = _CountingE2Node(transport, du.cells, source, ran_function_id=ran_function_id,
                           offered=offered)
    runner = E2NodeRunner(node, interval_s=tick_s, clock=clock).start()
    return DuE2Node(node, source, runner, transport)


def open_rmr_transport(port: int = DEFAULT_E2_PORT) -> E2Transport:
    """An ``RmrEndpoint`` listening on RMR data port ``port`` (waits up to its ready timeout
    for a route table). Raises :class:`E2Unavailable` with what is missing: the RMR library
    (``librmr_si.so`` / ricxappframe) or a route table (``RMR_SEED_RT``)."""
    try:
        from sim.rmr_transport import RmrEndpoint
    except (ImportError, OSError) as exc:  # ricxappframe dlopens librmr_si.so on import
        raise E2Unavailable(
            f"--e2 rmr needs RMR's C library librmr_si.so and ricxappframe, which could not be "
            f"loaded ({exc}); install RMR (docs/DEPLOY.md) and give RMR a route table: "
            f"RMR_SEED_RT=FILE (with RMR_RTG_SVC=-1 outside a RIC; see sim/rmr_transport.py)"
        ) from exc
    try:
        return RmrEndpoint(port)
    except (TransportError, ValueError) as exc:
        raise E2Unavailable(f"--e2 rmr: cannot open RMR on port {port}: {exc}") from exc
