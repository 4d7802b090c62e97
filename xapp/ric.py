"""The thin ricxappframe 3.2.2 adapter (``--mode ric`` only: importing it loads ``librmr_si.so``).

An ``RMRXapp`` on RMR port 4560 (the descriptor's ``rmrdata`` port; the library default 4562
differs) dispatches by message type, and every handler frees its buffer:

- RIC_INDICATION (12050) → ``Controller.on_indication(payload, sub_id)``;
- RIC_SUB_RESP / RIC_SUB_FAILURE / RIC_SUB_DEL_RESP (12011/12012/12021) → logged (with the
  subscription manager's REST API the outcome arrives on ``/ric/v1/subscriptions/response``);
- RIC_HEALTH_CHECK_REQ (100) → RIC_HEALTH_CHECK_RESP (101) ``OK`` when ready, else ``ERROR``.

Subscriptions go through ``SubmgrClient`` (REST), retried every ``retry_interval_s`` until made,
and are deleted on shutdown. The framework's own appmgr registration runs in its thread and only
logs when the RIC's environment (``HOSTNAME``, service variables) is absent.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

from ricxappframe.rmr import rmr
from ricxappframe.xapp_frame import RMRXapp

from xapp.app import XappApp
from xapp.config import parse_controls
from xapp.e2 import rmr_types
from xapp.logs import decision
from xapp.subscription import CellSubscription, SubmgrClient, SubmgrError

log = logging.getLogger("kdran.xapp.ric")

RMR_PORT = 4560
RIC_HEALTH_CHECK_REQ = 100
RIC_HEALTH_CHECK_RESP = 101


class RicAdapter:
    """Binds an ``XappApp`` to RMR and the subscription manager."""

    def __init__(self, app: XappApp, submgr: SubmgrClient, plan: list[CellSubscription],
                 retry_interval_s: float) -> None:
        self.app = app
        self.submgr = submgr
        self.plan = plan
        self.retry_interval_s = retry_interval_s
        self._stop = threading.Event()
        self.rmr_xapp = RMRXapp(self._default, config_handler=self._config, rmr_port=RMR_PORT,
                                rmr_wait_for_ready=False,
                                use_fake_sdl=not os.environ.get("DBAAS_SERVICE_HOST"))
        self.rmr_xapp.register_callback(self._indication, rmr_types.RIC_INDICATION)
        for mtype in (rmr_types.RIC_SUB_RESP, rmr_types.RIC_SUB_FAILURE,
                      rmr_types.RIC_SUB_DEL_RESP, rmr_types.RIC_SUB_DEL_FAILURE):
            self.rmr_xapp.register_callback(self._subscription_message, mtype)
        self.rmr_xapp.register_callback(self._health, RIC_HEALTH_CHECK_REQ)
        app.on_subscription_response = submgr.on_response

    # -- RMR handlers (each frees its buffer) ----------------------------------------------------
    def _indication(self, rmr_xapp: RMRXapp, summary: dict[str, Any], sbuf: Any) -> None:
        try:
            self.app.controller.on_indication(bytes(summary[rmr.RMR_MS_PAYLOAD] or b""),
                                              int(summary[rmr.RMR_MS_SUB_ID]))
        finally:
            rmr_xapp.rmr_free(sbuf)

    def _subscription_message(self, rmr_xapp: RMRXapp, summary: dict[str, Any],
                              sbuf: Any) -> None:
        decision("rmr_subscription_message", mtype=summary[rmr.RMR_MS_MSG_TYPE],
                 sub_id=summary[rmr.RMR_MS_SUB_ID], meid=summary.get(rmr.RMR_MS_MEID))
        rmr_xapp.rmr_free(sbuf)

    def _health(self, rmr_xapp: RMRXapp, summary: dict[str, Any], sbuf: Any) -> None:
        ok, reason = self.app.ready()
        payload = b"OK\n" if ok else f"ERROR {reason}\n".encode()
        rmr_xapp.rmr_rts(sbuf, new_payload=payload, new_mtype=RIC_HEALTH_CHECK_RESP)
        rmr_xapp.rmr_free(sbuf)

    def _default(self, rmr_xapp: RMRXapp, summary: dict[str, Any], sbuf: Any) -> None:
        log.warning("unexpected RMR message",
                    extra={"fields": {"mtype": summary[rmr.RMR_MS_MSG_TYPE]}})
        rmr_xapp.rmr_free(sbuf)

    def _config(self, rmr_xapp: RMRXapp, document: dict[str, Any]) -> None:
        controls, _ = parse_controls(document.get("controls", {}))
        self.app.controller.reconfigure(controls)

    # -- lifecycle -------------------------------------------------------------------------------
    def _subscribe_all(self) -> None:
        remaining = list(self.plan)
        while remaining and not self._stop.is_set():
            try:
                self.submgr.subscribe(remaining[0])
                remaining.pop(0)
            except SubmgrError as exc:
                decision("subscription_retry", level=logging.WARNING, error=str(exc),
                         retry_in_s=self.retry_interval_s)
                self._stop.wait(self.retry_interval_s)

    def run(self) -> None:
        """Serve until ``stop``: RMR dispatch in a thread, subscriptions, then wait."""
        self.rmr_xapp.run(thread=True, rmr_timeout=1)
        threading.Thread(target=self._subscribe_all, name="submgr", daemon=True).start()
        self._stop.wait()

    def stop(self, delete_subscriptions: bool = True) -> None:
        self._stop.set()
        if delete_subscriptions:
            self.submgr.delete_all()
        self.rmr_xapp.stop()
