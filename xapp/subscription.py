"""E2SM-KPM subscriptions: what to ask every E2 node for, and two ways of asking.

``plan(controls)`` gives one ``CellSubscription`` per configured (E2 node, cell): the KPM event
trigger (report every ``reporting_period_ms``) and a Format 1 action definition naming the cell
and the measurements, both encoded by ``xapp.e2``.

- ``SubmgrClient``: the RIC way, the subscription manager's REST API (``POST /subscriptions``
  with the swagger field names, asynchronous answer on ``/ric/v1/subscriptions/response``,
  ``DELETE /subscriptions/{SubscriptionId}``). The answer's ``E2EventInstanceId`` is the RMR
  ``sub_id`` of the indications; it is entered in the ``SubscriptionTable`` then.
- ``DirectSubscriber``: the embedded way, E2AP RICsubscriptionRequest/DeleteRequest over an
  E2 transport (``sim.transport``); the RIC instance id is the ``sub_id``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from xapp.config import Controls
from xapp.controller import Subscribed, SubscriptionTable
from xapp.e2 import (
    ActionDefinition,
    EventTrigger,
    NrCgi,
    RicAction,
    RicRequestId,
    SubscriptionDeleteRequest,
    SubscriptionFailure,
    SubscriptionRequest,
    SubscriptionResponse,
    decode_e2ap,
    encode_action_definition,
    encode_e2ap,
    encode_event_trigger,
)
from xapp.e2.e2ap import E2apMessage
from xapp.logs import decision

log = logging.getLogger("kdran.xapp.subscription")

ACTION_ID = 1
XAPP_REQUESTOR_ID = 1031
"""RIC requestor id the xApp uses in direct (embedded) E2AP subscriptions."""


def parse_cell(text: str) -> NrCgi:
    """A cell from config: ``"00101-000000001"`` or the dashless ``"00101000000001"`` (PLMN digits
    followed by the 9-hex-digit NR cell identity)."""
    if "-" in text:
        return NrCgi.parse(text)
    if len(text) not in (14, 15) or not text[:-9].isdigit():
        raise ValueError(f"cell {text!r} must be '<5-6 PLMN digits>-<9 hex NCI>' or dashless")
    return NrCgi(text[:-9], int(text[-9:], 16))


@dataclass(frozen=True)
class CellSubscription:
    """One KPM REPORT subscription: node, cell, measurements and the encoded E2SM parts."""

    e2_node: str
    cell: NrCgi
    measurement_names: tuple[str, ...]
    event_trigger: bytes
    action_definition: bytes

    def subscribed(self) -> Subscribed:
        return Subscribed(self.e2_node, str(self.cell), self.measurement_names)


def plan(controls: Controls) -> list[CellSubscription]:
    """Every (node, cell) subscription of ``controls.e2``."""
    kpm = controls.e2.kpm
    if kpm.report_style != 1:
        raise ValueError(f"e2.kpm.report_style {kpm.report_style} is not supported (use 1: "
                         "cell-level; per-UE Format 3 reports are still decoded per UE group)")
    names = tuple(kpm.measurements)
    trigger = encode_event_trigger(EventTrigger(kpm.reporting_period_ms))
    out = []
    for node in controls.e2.nodes:
        for text in node.cells:
            cell = parse_cell(text)
            action = encode_action_definition(
                ActionDefinition(names, kpm.granularity_period_ms, cell=cell))
            out.append(CellSubscription(node.meid, cell, names, trigger, action))
    return out


# -- the subscription manager (RIC) ----------------------------------------------------------------


@dataclass(frozen=True)
class ClientEndpoint:
    """Where the subscription manager reaches the xApp."""

    host: str
    http_port: int
    rmr_port: int = 4560


def submgr_body(sub: CellSubscription, ran_function_id: int, endpoint: ClientEndpoint,
                xapp_event_instance_id: int) -> dict[str, Any]:
    """The ``SubscriptionParams`` JSON body, with the swagger (PascalCase) field names submgr
    expects; E2SM octets travel as arrays of integers."""
    return {
        "SubscriptionId": "",
        "ClientEndpoint": {"Host": endpoint.host, "HTTPPort": endpoint.http_port,
                           "RMRPort": endpoint.rmr_port},
        "Meid": sub.e2_node,
        "RANFunctionID": ran_function_id,
        "SubscriptionDetails": [{
            "XappEventInstanceId": xapp_event_instance_id,
            "EventTriggers": list(sub.event_trigger),
            "ActionToBeSetupList": [{
                "ActionID": ACTION_ID,
                "ActionType": "report",
                "ActionDefinition": list(sub.action_definition),
                "SubsequentAction": {"SubsequentActionType": "continue", "TimeToWait": "zero"},
            }],
        }],
    }


class SubmgrError(Exception):
    """The subscription manager refused or could not be reached."""


class SubmgrClient:
    """Subscribes through submgr's REST API and completes on its asynchronous response."""

    def __init__(self, base_url: str, endpoint: ClientEndpoint, ran_function_id: int,
                 table: SubscriptionTable, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.endpoint = endpoint
        self.ran_function_id = ran_function_id
        self.table = table
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._event_ids = itertools.count(1)
        self._pending: dict[int, CellSubscription] = {}
        """XappEventInstanceId → the subscription it asked for."""
        self._active: dict[str, list[int]] = {}
        """SubscriptionId → the E2EventInstanceIds (RMR sub ids) it got."""
        self.submitted: list[str] = []

    def subscribe(self, sub: CellSubscription) -> str:
        """POST one subscription; returns submgr's ``SubscriptionId``."""
        event_id = next(self._event_ids)
        body = submgr_body(sub, self.ran_function_id, self.endpoint, event_id)
        with self._lock:
            self._pending[event_id] = sub
        try:
            reply = requests.post(f"{self.base_url}/subscriptions", json=body,
                                  timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise SubmgrError(f"subscription manager unreachable: {exc}") from None
        if reply.status_code != 201:
            raise SubmgrError(f"subscription refused: HTTP {reply.status_code} {reply.text[:200]}")
        sub_id = str(reply.json().get("SubscriptionId", ""))
        if not sub_id:
            raise SubmgrError(f"subscription answer without SubscriptionId: {reply.text[:200]}")
        with self._lock:
            self._active.setdefault(sub_id, [])
            self.submitted.append(sub_id)
        decision("subscription_requested", subscription_id=sub_id, meid=sub.e2_node,
                 cell=str(sub.cell), xapp_event_instance_id=event_id)
        return sub_id

    def on_response(self, body: dict[str, Any]) -> None:
        """The asynchronous ``SubscriptionResponse`` POSTed by submgr."""
        sub_id = str(body.get("SubscriptionId", ""))
        for instance in body.get("SubscriptionInstances") or []:
            event_id = instance.get("XappEventInstanceId")
            e2_id = instance.get("E2EventInstanceId")
            error = instance.get("ErrorCause") or ""
            with self._lock:
                sub = self._pending.pop(event_id, None) if isinstance(event_id, int) else None
            if sub is None:
                log.warning("subscription response for an unknown request",
                            extra={"fields": {"body": body}})
                continue
            if error or not isinstance(e2_id, int) or e2_id <= 0:
                decision("subscription_failed", level=logging.WARNING, subscription_id=sub_id,
                         meid=sub.e2_node, cell=str(sub.cell), error=error,
                         source=instance.get("ErrorSource"))
                continue
            self.table.add(e2_id, sub.subscribed())
            with self._lock:
                self._active.setdefault(sub_id, []).append(e2_id)
            decision("subscription_active", subscription_id=sub_id, e2_event_instance_id=e2_id,
                     meid=sub.e2_node, cell=str(sub.cell))

    def delete_all(self) -> None:
        """DELETE every subscription made (shutdown); failures are logged, not raised."""
        with self._lock:
            active = dict(self._active)
            self._active.clear()
        for sub_id, e2_ids in active.items():
            for e2_id in e2_ids:
                self.table.remove(e2_id)
            try:
                reply = requests.delete(f"{self.base_url}/subscriptions/{sub_id}",
                                        timeout=self.timeout_s)
                decision("subscription_deleted", subscription_id=sub_id,
                         status=reply.status_code)
            except requests.RequestException as exc:
                log.warning("subscription delete failed",
                            extra={"fields": {"subscription_id": sub_id, "error": str(exc)}})


# -- direct E2AP (embedded) ------------------------------------------------------------------------


class MessageSender(Protocol):
    """Sends one E2AP PDU with its RMR type and sub id (``sim.transport`` or RMR)."""

    def __call__(self, mtype: int, payload: bytes, sub_id: int) -> None: ...


class DirectSubscriber:
    """E2AP subscription procedures straight to the E2 node (no subscription manager)."""

    def __init__(self, send: MessageSender, ran_function_id: int,
                 table: SubscriptionTable) -> None:
        self.send = send
        self.ran_function_id = ran_function_id
        self.table = table
        self._instances: Iterator[int] = itertools.count(1)
        self._pending: dict[int, CellSubscription] = {}
        self.active: set[int] = set()

    def subscribe(self, sub: CellSubscription) -> int:
        """Send a RICsubscriptionRequest; returns its RIC instance id (the future sub id)."""
        instance = next(self._instances)
        request = SubscriptionRequest(RicRequestId(XAPP_REQUESTOR_ID, instance),
                                      self.ran_function_id, sub.event_trigger,
                                      (RicAction(ACTION_ID, sub.action_definition),))
        self._pending[instance] = sub
        self.send(request.rmr_type, encode_e2ap(request), instance)
        return instance

    def on_message(self, payload: bytes) -> E2apMessage:
        """Handle a subscription response/failure/delete response; returns the decoded PDU."""
        pdu = decode_e2ap(payload)
        instance = pdu.request.instance_id
        if isinstance(pdu, SubscriptionResponse):
            sub = self._pending.pop(instance, None)
            if sub is not None:
                self.table.add(instance, sub.subscribed())
                self.active.add(instance)
                decision("subscription_active", e2_event_instance_id=instance,
                         meid=sub.e2_node, cell=str(sub.cell))
        elif isinstance(pdu, SubscriptionFailure):
            sub = self._pending.pop(instance, None)
            decision("subscription_failed", level=logging.WARNING, e2_event_instance_id=instance,
                     cause=str(pdu.cause), cell=str(sub.cell) if sub else "")
        return pdu

    def delete_all(self) -> None:
        """Send a RICsubscriptionDeleteRequest for every active subscription."""
        for instance in sorted(self.active):
            request = SubscriptionDeleteRequest(RicRequestId(XAPP_REQUESTOR_ID, instance),
                                                self.ran_function_id)
            self.table.remove(instance)
            self.send(request.rmr_type, encode_e2ap(request), instance)
        self.active.clear()
