"""RMR implementation of :class:`~sim.transport.E2Transport` (importing it loads librmr_si.so).

An :class:`RmrEndpoint` is one RMR context of ricxappframe 3.2.2's bindings, listening on its own
port. ``send`` allocates a message buffer, sets ``mtype``, ``sub_id`` and the APER E2AP-PDU as
payload, and calls ``rmr_send_msg``; ``receive`` calls ``rmr_torcv_msg`` and turns the buffer into
an :class:`~sim.transport.E2Message`. Every buffer is freed with ``rmr_free_msg``. The bytes are
exactly those the in-process endpoints carry.

RMR routes by message type, so the emulator needs a route table before it can send: the routing
manager pushes one in the RIC; outside it, point ``RMR_SEED_RT`` at a static table (RMR reads it at
``rmr_init``) and set ``RMR_RTG_SVC=-1`` so RMR does not wait for a routing manager. An emulated
E2 node on port 4570 (``kdran sim du --e2 rmr --e2-port 4570``, ``sim.du_e2``) sending indications
to an xApp on its ``rmrdata`` port 4560 needs::

    newrt|start
    rte|12050|xapp-host:4560
    rte|12011|xapp-host:4560
    rte|12012|xapp-host:4560
    rte|12021|xapp-host:4560
    rte|12022|xapp-host:4560
    rte|12010|e2node-host:4570
    rte|12020|e2node-host:4570
    newrt|end

(``deploy/rmr/seed.rt`` is the xApp's own, empty seed table and routes none of these.)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Final

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

from ricxappframe.rmr import rmr

from sim.transport import E2Message, TransportError

log = logging.getLogger("kdran.sim.rmr")

DEFAULT_MAX_MSG_BYTES: Final = 65536
"""Largest message an endpoint receives, bytes (E2AP indications are a few kB)."""
READY_TIMEOUT_S: Final = 5.0
"""How long ``RmrEndpoint`` waits for RMR to have a route table, seconds."""
SEND_RETRIES: Final = 5
"""Extra ``rmr_send_msg`` attempts while RMR answers RMR_ERR_RETRY."""
RETRY_PAUSE_S: Final = 0.01
"""Pause between send attempts, seconds."""
RECEIVE_SLICE_MS: Final = 200
"""Longest single ``rmr_torcv_msg`` wait, ms, so that ``close`` is never held up longer."""


class RmrEndpoint:
    """One side of an E2 link over RMR (sends from many threads, receives from one at a time).

    ``port`` is the RMR data port this endpoint listens on; where a message goes is up to the
    route table (see the module docstring). Raises TransportError when RMR cannot start or has
    no route table within ``ready_timeout_s`` seconds.
    """

    def __init__(self, port: int, *, max_msg_bytes: int = DEFAULT_MAX_MSG_BYTES,
                 ready_timeout_s: float = READY_TIMEOUT_S,
                 send_retries: int = SEND_RETRIES) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"RMR port must be in 1..65535, got {port}")
        if max_msg_bytes <= 0 or send_retries < 0:
            raise ValueError("max_msg_bytes must be > 0 and send_retries >= 0")
        self.port = port
        self.send_retries = send_retries
        self._closed = threading.Event()
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        try:
            self._ctx: Any = rmr.rmr_init(str(port).encode(), max_msg_bytes, rmr.RMRFL_MTCALL)
        except Exception as exc:  # ricxappframe raises InitFailed (and ctypes errors)
            raise TransportError(f"rmr_init on port {port} failed: {exc!r}") from exc
        try:
            self._wait_ready(ready_timeout_s)
        except TransportError:
            rmr.rmr_close(self._ctx)
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while rmr.rmr_ready(self._ctx) == 0:
            if time.monotonic() >= deadline:
                raise TransportError(f"RMR on port {self.port} has no route table after "
                                     f"{timeout_s:g} s (set RMR_SEED_RT, or RMR_RTG_SVC)")
            time.sleep(0.05)

    def send(self, message: E2Message) -> None:
        """Send ``message`` by its mtype's route; raise TransportError unless RMR reports RMR_OK."""
        with self._send_lock:
            if self._closed.is_set():
                raise TransportError(f"RMR endpoint on port {self.port} is closed")
            sbuf = rmr.rmr_alloc_msg(self._ctx, max(len(message.payload), 1))
            try:
                sbuf.contents.mtype = message.mtype
                sbuf.contents.sub_id = message.sub_id
                rmr.set_payload_and_length(message.payload, sbuf)
                sbuf = self._send_with_retries(sbuf)
                if not sbuf:
                    raise TransportError(f"rmr_send_msg on port {self.port} returned no buffer")
                state = sbuf.contents.state
                if state != rmr.RMR_OK:
                    raise TransportError(
                        f"rmr_send_msg mtype {message.mtype} from port {self.port}: state "
                        f"{state} ({rmr.state_to_status(state)})")
            finally:
                if sbuf:  # a NULL pointer is falsy; RMR kept nothing to free then
                    rmr.rmr_free_msg(sbuf)

    def _send_with_retries(self, sbuf: Any) -> Any:
        """``rmr_send_msg`` again while the returned buffer says RMR_ERR_RETRY (bounded).
        Returns the last buffer RMR handed back (possibly NULL)."""
        for attempt in range(self.send_retries + 1):
            if attempt:
                time.sleep(RETRY_PAUSE_S)
            sbuf = rmr.rmr_send_msg(self._ctx, sbuf)
            if not sbuf or sbuf.contents.state != rmr.RMR_ERR_RETRY:
                break
        return sbuf

    def receive(self, timeout: float | None = None) -> E2Message | None:
        """The next message; wait up to ``timeout`` s (None: until one comes or ``close``)."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while not self._closed.is_set():
            left_ms = RECEIVE_SLICE_MS if deadline is None else int(
                (deadline - time.monotonic()) * 1000)
            message = self._receive_once(min(max(left_ms, 0), RECEIVE_SLICE_MS))
            if message is not None:
                return message
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return None

    def _receive_once(self, ms: int) -> E2Message | None:
        with self._receive_lock:
            if self._closed.is_set():
                return None
            rbuf = rmr.rmr_torcv_msg(self._ctx, None, ms)
            try:
                if not rbuf:
                    return None
                state = rbuf.contents.state
                if state == rmr.RMR_OK:
                    return E2Message(rbuf.contents.mtype, rmr.get_payload(rbuf),
                                     rbuf.contents.sub_id)
                if state != rmr.RMR_ERR_TIMEOUT:
                    log.warning("rmr_torcv_msg on port %d: state %d (%s)", self.port, state,
                                rmr.state_to_status(state))
                return None
            finally:
                if rbuf:
                    rmr.rmr_free_msg(rbuf)

    def close(self) -> None:
        """Stop the endpoint and close the RMR context (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._send_lock, self._receive_lock:
            rmr.rmr_close(self._ctx)

    def __enter__(self) -> RmrEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
