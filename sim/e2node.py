"""An emulated E2 node with the E2SM-KPM v03.00 REPORT service, driven by an explicit clock.

It answers RIC subscriptions arriving over an :class:`~sim.transport.E2Transport` and, every
reporting period of each admitted action, sends a real E2AP RICindication: KPM header Format 1
plus message Format 1 (cell level, ActionDefinition Format 1) or Format 3 (per UE, Formats 4/5).

Values come from a :data:`MetricsSource`: called once per tick that has something due, it
returns the current measurement values per cell (and per UE). The DU emulator plugs the dApp's
``GetStatus`` numbers and a traffic model in there. Each indication carries one measurement
record covering the reporting period that just ended (collection start = now - period).

``E2Node.tick(now)`` does all the work (handle inbox, emit what is due) so tests are
deterministic; :class:`E2NodeRunner` calls it from a thread against the wall clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from sim.transport import E2Message, E2Transport, TransportError
from xapp.e2 import (
    ActionDefinition,
    Cause,
    E2DecodeError,
    E2EncodeError,
    KpmHeader,
    KpmReport,
    MeasValue,
    NrCgi,
    RanFunctionDefinition,
    ReportStyle,
    RicAction,
    RicIndication,
    RicRequestId,
    SubscriptionDeleteFailure,
    SubscriptionDeleteRequest,
    SubscriptionDeleteResponse,
    SubscriptionFailure,
    SubscriptionRequest,
    SubscriptionResponse,
    UeCondition,
    UeId,
    decode_action_definition,
    decode_e2ap,
    decode_event_trigger,
    encode_e2ap,
    encode_indication_header,
    encode_indication_message,
)
from xapp.e2.e2ap import E2apMessage
from xapp.e2.kpm_asn import KPM_OID
from xapp.e2.measurements import KDRAN_MEASUREMENTS

log = logging.getLogger(__name__)

KPM_RAN_FUNCTION_ID: Final = 2
"""RAN function id of the KPM service on this node (any 0..4095; 2 is customary for KPM)."""
MeasNumber = int | float | None
"""A raw measurement value: non-negative int -> KPM integer, other numbers -> real, None ->
noValue (see :meth:`MeasValue.of`)."""


@dataclass(frozen=True)
class UeSnapshot:
    """One UE now: its F1AP id, its measurement values, and the attributes Format 4 conditions
    test, keyed by ``TestCond-Type`` name (``"cQI"``, ``"rSRP"`` dBm, ``"fiveQI"`` ...)."""

    ue_id: int
    values: Mapping[str, MeasNumber]
    attributes: Mapping[str, float | int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class CellSnapshot:
    """One cell now: cell-level measurement values and its UEs."""

    cell: NrCgi
    values: Mapping[str, MeasNumber]
    ues: tuple[UeSnapshot, ...] = ()


MetricsSource = Callable[[datetime], Sequence[CellSnapshot]]
"""``source(now)`` -> the current snapshot of every cell the node serves."""


class SubscriptionRefused(Exception):
    """An action or subscription the node will not serve, with the E2AP cause to answer."""

    def __init__(self, cause: Cause, reason: str) -> None:
        super().__init__(reason)
        self.cause = cause


@dataclass
class _Action:
    """An admitted REPORT action and its schedule."""

    request: RicRequestId
    action_id: int
    definition: ActionDefinition
    cell: NrCgi | None
    period: timedelta
    next_due: datetime
    sequence: int = 0


def _ric_cause(value: str) -> Cause:
    return Cause("ricRequest", value)


def _matches(condition: UeCondition, ue: UeSnapshot) -> bool:
    attr = ue.attributes.get(condition.test)
    if condition.expression in (None, "present") or attr is None:
        return attr is not None
    target = condition.value
    if condition.expression == "contains":
        return isinstance(attr, str) and isinstance(target, str) and target in attr
    if isinstance(attr, str) or target is None or isinstance(target, str):
        return condition.expression == "equal" and attr == target
    return {"equal": attr == target, "greaterthan": attr > target,
            "lessthan": attr < target}.get(condition.expression, False)


def ue_matches(conditions: Sequence[UeCondition], ue: UeSnapshot) -> bool:
    """Evaluate Format 4 conditions left to right: AND by default, OR where ``logical_or`` is set
    on the preceding condition (AND binds tighter, as in a sum of products)."""
    groups: list[bool] = [True]
    for index, cond in enumerate(conditions):
        groups[-1] = groups[-1] and _matches(cond, ue)
        if cond.logical_or and index < len(conditions) - 1:
            groups.append(True)
    return any(groups)


class E2Node:
    """The E2 node: subscriptions in, KPM indications out. Not thread-safe: one caller of
    :meth:`tick` at a time (the runner, or a test)."""

    def __init__(self, transport: E2Transport, cells: Sequence[NrCgi], source: MetricsSource, *,
                 ran_function_id: int = KPM_RAN_FUNCTION_ID,
                 offered: Collection[str] = KDRAN_MEASUREMENTS) -> None:
        if not cells:
            raise ValueError("an E2 node serves at least one cell")
        self.transport = transport
        self.cells = tuple(cells)
        self.source = source
        self.ran_function_id = ran_function_id
        self.offered = frozenset(offered)
        self._actions: dict[tuple[RicRequestId, int], _Action] = {}
        self.indications_sent = 0

    # ---------------------------------------------------------------- service description

    def ran_function_definition(self) -> RanFunctionDefinition:
        """What this node offers (REPORT styles 1, 4, 5 with every offered measurement)."""
        names = tuple(sorted(self.offered))
        styles = tuple(ReportStyle(style, name, style, names, 1, 1 if style == 1 else 3)
                       for style, name in ((1, "E2 Node Measurement"),
                                           (4, "Common Condition-based, UE-level Measurement"),
                                           (5, "E2 Node Measurement for multiple UEs")))
        return RanFunctionDefinition("ORAN-E2SM-KPM", KPM_OID, "KPM Monitor", None, (), styles)

    @property
    def subscriptions(self) -> frozenset[RicRequestId]:
        """Request ids with at least one admitted action."""
        return frozenset(request for request, _ in self._actions)

    # ---------------------------------------------------------------- clock

    def tick(self, now: datetime) -> int:
        """Handle every waiting message, then send the indications due at ``now`` (UTC).
        Returns how many indications were sent."""
        while (message := self.transport.receive(timeout=0)) is not None:
            self.handle(message, now)
        due = [a for a in self._actions.values() if a.next_due <= now]
        if not due:
            return 0
        snapshot = {c.cell: c for c in self.source(now)}
        sent = sum(self._report(action, snapshot, now) for action in due)
        self.indications_sent += sent
        return sent

    # ---------------------------------------------------------------- procedures

    def handle(self, message: E2Message, now: datetime) -> None:
        """Process one incoming message; undecodable or unexpected ones are logged and dropped."""
        try:
            pdu = decode_e2ap(message.payload)
        except E2DecodeError as exc:
            log.warning("dropping undecodable E2 message type %d: %s", message.mtype, exc.reason)
            return
        if isinstance(pdu, SubscriptionRequest):
            self._reply(self._subscribe(pdu, now))
        elif isinstance(pdu, SubscriptionDeleteRequest):
            self._reply(self._unsubscribe(pdu))
        else:
            log.warning("ignoring unexpected %s", type(pdu).__name__)

    def _reply(self, pdu: E2apMessage) -> None:
        self._send(pdu, pdu.request.instance_id)

    def _send(self, pdu: E2apMessage, sub_id: int) -> None:
        try:
            self.transport.send(E2Message(pdu.rmr_type, encode_e2ap(pdu), sub_id))
        except TransportError as exc:
            log.warning("could not send %s: %s", type(pdu).__name__, exc)

    def _subscribe(self, req: SubscriptionRequest, now: datetime) -> E2apMessage:
        def fail(cause: Cause) -> SubscriptionFailure:
            return SubscriptionFailure(req.request, req.ran_function_id, cause)

        if req.ran_function_id != self.ran_function_id:
            return fail(_ric_cause("ran-function-id-invalid"))
        if req.request in self.subscriptions:
            return fail(_ric_cause("duplicate-ric-request-id"))
        try:
            period = timedelta(milliseconds=decode_event_trigger(req.event_trigger)
                               .reporting_period_ms)
        except E2DecodeError as exc:
            log.info("refusing subscription %s: %s", req.request, exc.reason)
            return fail(_ric_cause("eventTriggerNotSupported"))
        admitted, refused = [], []
        for ric_action in req.actions:
            try:
                action = self._admit(req.request, ric_action, period, now)
            except SubscriptionRefused as exc:
                log.info("refusing action %d of %s: %s", ric_action.action_id, req.request, exc)
                refused.append((ric_action.action_id, exc.cause))
                continue
            admitted.append(action)
        if not admitted:
            return fail(refused[0][1] if refused else _ric_cause("action-not-supported"))
        for action in admitted:
            self._actions[(req.request, action.action_id)] = action
        return SubscriptionResponse(req.request, req.ran_function_id,
                                    tuple(a.action_id for a in admitted), tuple(refused))

    def _admit(self, request: RicRequestId, ric_action: RicAction, period: timedelta,
               now: datetime) -> _Action:
        if ric_action.action_type != "report" or ric_action.definition is None:
            raise SubscriptionRefused(_ric_cause("action-not-supported"),
                                      "only REPORT actions with a definition are served")
        try:
            definition = decode_action_definition(ric_action.definition)
        except E2DecodeError as exc:
            raise SubscriptionRefused(_ric_cause("action-not-supported"), exc.reason) from None
        unknown = [n for n in definition.measurement_names if n not in self.offered]
        if unknown:
            raise SubscriptionRefused(_ric_cause("requested-information-unavailable"),
                                      f"unknown measurements {unknown}")
        return _Action(request, ric_action.action_id, definition, self._cell_for(definition),
                       period, now + period)

    def _cell_for(self, definition: ActionDefinition) -> NrCgi | None:
        if definition.cell is not None:
            if definition.cell not in self.cells:
                raise SubscriptionRefused(_ric_cause("requested-information-unavailable"),
                                          f"cell {definition.cell} is not served here")
            return definition.cell
        if definition.per_ue:
            return None  # per-UE reports name their UEs: all cells
        if len(self.cells) > 1:
            raise SubscriptionRefused(_ric_cause("action-not-supported"),
                                      "a cell-level action on a multi-cell node needs a cell "
                                      "global ID")
        return self.cells[0]

    def _unsubscribe(self, req: SubscriptionDeleteRequest) -> E2apMessage:
        keys = [key for key in self._actions if key[0] == req.request]
        if not keys:
            return SubscriptionDeleteFailure(req.request, req.ran_function_id,
                                             _ric_cause("request-id-unknown"))
        for key in keys:
            del self._actions[key]
        return SubscriptionDeleteResponse(req.request, req.ran_function_id)

    # ---------------------------------------------------------------- reports

    def _report(self, action: _Action, snapshot: Mapping[NrCgi, CellSnapshot],
                now: datetime) -> int:
        """Send this action's indication for the period ending ``now``; 1 if one was sent."""
        while action.next_due <= now:  # skip missed periods instead of bursting
            action.next_due += action.period
        start = now - action.period
        reports = self._build_reports(action, snapshot, start)
        if not reports:
            return 0
        try:
            header = encode_indication_header(KpmHeader(start, sender_name="kdran-sim",
                                                        vendor_name="kdran"))
            message = encode_indication_message(reports)
        except E2EncodeError as exc:
            log.warning("cannot encode report for %s: %s", action.request, exc.reason)
            return 0
        action.sequence += 1
        pdu = RicIndication(action.request, self.ran_function_id, action.action_id, header,
                            message, sequence_number=action.sequence % 65536)
        self._send(pdu, action.request.instance_id)
        return 1

    def _build_reports(self, action: _Action, snapshot: Mapping[NrCgi, CellSnapshot],
                       start: datetime) -> list[KpmReport]:
        definition = action.definition
        if action.cell is None:
            cells = list(snapshot.values())
        else:
            cells = [snapshot[action.cell]] if action.cell in snapshot else []

        def report(values: Mapping[str, MeasNumber], ue: UeId | None) -> KpmReport:
            measurements = {n: MeasValue.of(values.get(n)) for n in definition.measurement_names}
            return KpmReport(start, definition.granularity_period_ms, measurements, ue_id=ue)

        if not definition.per_ue:
            return [report(cell.values, None) for cell in cells]
        wanted = set(definition.ue_ids)
        return [report(ue.values, UeId.du(ue.ue_id)) for cell in cells for ue in cell.ues
                if (ue_matches(definition.ue_conditions, ue) if definition.ue_conditions
                    else UeId.du(ue.ue_id) in wanted)]


class E2NodeRunner:
    """Calls :meth:`E2Node.tick` with the wall clock (UTC) every ``interval_s`` in a thread."""

    def __init__(self, node: E2Node, interval_s: float = 0.01,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.node = node
        self.interval_s = interval_s
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> E2NodeRunner:
        if self._thread is not None:
            raise RuntimeError("runner already started")
        self._thread = threading.Thread(target=self._run, name="e2node", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.node.tick(self.clock())
            except Exception:  # keep reporting: one bad tick must not kill the node
                log.exception("E2 node tick failed")
            self._stop.wait(self.interval_s)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> E2NodeRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
