"""Embedded E2 path: the xApp talks E2AP directly to an E2 node over an ``E2Transport``
(``sim.transport``, in-process queues carrying the same RMR-typed bytes as the RIC).

``LocalE2Loop`` subscribes to every planned cell with E2AP RICsubscriptionRequest, then
dispatches what arrives: RIC_INDICATION (12050) to ``Controller.on_indication`` with the message's
sub id, subscription responses/failures to the ``DirectSubscriber``. ``stop`` deletes the
subscriptions and joins the thread.
"""

from __future__ import annotations

import logging
import threading

from sim.transport import E2Message, E2Transport, TransportError
from xapp.controller import Controller
from xapp.e2 import E2DecodeError, rmr_types
from xapp.subscription import CellSubscription, DirectSubscriber

log = logging.getLogger("kdran.xapp.local")

_SUBSCRIPTION_TYPES = frozenset({rmr_types.RIC_SUB_RESP, rmr_types.RIC_SUB_FAILURE,
                                 rmr_types.RIC_SUB_DEL_RESP, rmr_types.RIC_SUB_DEL_FAILURE})


class LocalE2Loop:
    """Receive thread over one transport to one E2 node."""

    def __init__(self, controller: Controller, transport: E2Transport, ran_function_id: int,
                 subscriptions: list[CellSubscription]) -> None:
        self.controller = controller
        self.transport = transport
        self.plan = subscriptions
        self.subscriber = DirectSubscriber(self._send, ran_function_id, controller.subscriptions)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2-local", daemon=True)

    def _send(self, mtype: int, payload: bytes, sub_id: int) -> None:
        self.transport.send(E2Message(mtype, payload, sub_id))

    def start(self) -> LocalE2Loop:
        self._thread.start()
        for sub in self.plan:
            self.subscriber.subscribe(sub)
        return self

    def handle(self, message: E2Message) -> None:
        """Dispatch one message by RMR type."""
        if message.mtype == rmr_types.RIC_INDICATION:
            self.controller.on_indication(message.payload, message.sub_id)
        elif message.mtype in _SUBSCRIPTION_TYPES:
            try:
                self.subscriber.on_message(message.payload)
            except E2DecodeError as exc:
                log.warning("undecodable subscription answer",
                            extra={"fields": {"mtype": message.mtype, "reason": exc.reason}})
        else:
            log.warning("unexpected E2 message type", extra={"fields": {"mtype": message.mtype}})

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self.transport.receive(timeout=0.2)
            if message is not None:
                try:
                    self.handle(message)
                except Exception:  # one bad message must not stop the loop
                    log.exception("E2 message handling failed")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Delete the subscriptions, stop receiving."""
        try:
            self.subscriber.delete_all()
        except TransportError as exc:
            log.warning("could not delete subscriptions", extra={"fields": {"error": str(exc)}})
        self._stop.set()
        self._thread.join(timeout_s)
