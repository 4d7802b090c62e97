"""How E2AP bytes travel between an E2 node and the xApp.

In the near-RT RIC, E2 termination and the subscription manager relay every E2AP PDU to and from
xApps as RMR messages: ``mtype`` names the message (12010 RIC_SUB_REQ, 12011 RIC_SUB_RESP, 12012
RIC_SUB_FAILURE, 12020/12021/12022 delete request/response/failure, 12050 RIC_INDICATION; see
:mod:`xapp.e2.rmr_types`), ``sub_id`` the subscription (the subscription manager sets it to the
RIC instance id), and the payload is the APER ``E2AP-PDU`` unchanged. :class:`E2Transport` is that
contract; both implementations carry the same bytes.

- :func:`in_process_pair`: two connected endpoints over thread-safe queues, for the embedded
  default (xApp and emulated E2 node in one process) and for tests.
- :class:`sim.rmr_transport.RmrEndpoint` (RMR, ``librmr_si.so``) maps ``send`` to
  ``rmr_send_msg`` with ``mtype``/``sub_id`` set on the message buffer and ``receive`` to
  ``rmr_torcv_msg``; it raises :class:`TransportError` where RMR reports a failed send.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Final, Protocol

DEFAULT_E2_PORT: Final = 4570
"""RMR data port an emulated E2 node listens on (``kdran sim du --e2 rmr``,
``sim.rmr_transport``)."""

UNSET_SUB_ID: Final = -1
"""RMR's "no subscription id" value."""
DEFAULT_QUEUE_DEPTH: Final = 4096
"""Messages an in-process endpoint buffers before ``send`` to it fails."""


class TransportError(Exception):
    """A message could not be sent (peer gone, queue full, endpoint closed)."""


@dataclass(frozen=True)
class E2Message:
    """One RMR-framed E2AP message: type, subscription id and the APER E2AP-PDU bytes."""

    mtype: int
    payload: bytes
    sub_id: int = UNSET_SUB_ID


class E2Transport(Protocol):
    """A bidirectional E2 message channel as one side (xApp or E2 node) sees it."""

    def send(self, message: E2Message) -> None:
        """Hand ``message`` to the peer without blocking; raise TransportError on failure."""
        ...

    def receive(self, timeout: float | None = None) -> E2Message | None:
        """The next message from the peer; wait up to ``timeout`` s (None: forever, 0: poll).
        Returns None on timeout or once the endpoint is closed."""
        ...

    def close(self) -> None:
        """Stop this endpoint: further sends fail, pending receives return None."""
        ...


_CLOSED: Final = object()


class InProcessEndpoint:
    """One end of an in-process E2 link (thread-safe; many senders, any receiver thread)."""

    def __init__(self, name: str, depth: int = DEFAULT_QUEUE_DEPTH) -> None:
        self.name = name
        self._inbox: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._peer: InProcessEndpoint | None = None
        self._closed = threading.Event()

    def connect(self, peer: InProcessEndpoint) -> None:
        """Link this endpoint's sends to ``peer``'s inbox."""
        self._peer = peer

    def send(self, message: E2Message) -> None:
        peer = self._peer
        if self._closed.is_set() or peer is None or peer._closed.is_set():
            raise TransportError(f"{self.name}: link is closed or not connected")
        try:
            peer._inbox.put_nowait(message)
        except queue.Full:
            raise TransportError(f"{self.name}: peer {peer.name} queue full") from None

    def receive(self, timeout: float | None = None) -> E2Message | None:
        if self._closed.is_set():
            return None
        try:
            item = self._inbox.get(block=timeout != 0, timeout=timeout or None)
        except queue.Empty:
            return None
        return item if isinstance(item, E2Message) else None

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(queue.Full):
            self._inbox.put_nowait(_CLOSED)  # wake a blocked receiver


def in_process_pair(depth: int = DEFAULT_QUEUE_DEPTH
                    ) -> tuple[InProcessEndpoint, InProcessEndpoint]:
    """Two connected endpoints: ``(ric_side, node_side)``."""
    ric, node = InProcessEndpoint("ric", depth), InProcessEndpoint("e2node", depth)
    ric.connect(node)
    node.connect(ric)
    return ric, node
