"""E2 subscriptions through the subscription manager's REST API, against a local HTTP test
double: the exact JSON body (swagger field names), the asynchronous response on the xApp's own
HTTP server, indications routed by E2EventInstanceId, deletion on shutdown."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from xapp.config import Controls, E2Config, E2Node, KpmConfig
from xapp.controller import SubscriptionTable
from xapp.e2 import (
    ActionDefinition,
    EventTrigger,
    NrCgi,
    decode_action_definition,
    decode_event_trigger,
)
from xapp.e2.measurements import KDRAN_MEASUREMENTS
from xapp.subscription import ClientEndpoint, SubmgrClient, SubmgrError, parse_cell, plan


class Submgr:
    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.posted: list[dict[str, Any]] = []
        self.deleted: list[str] = []


@pytest.fixture
def submgr() -> Iterator[tuple[Submgr, str]]:
    state = Submgr()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            assert self.path == "/ric/v1/subscriptions"
            state.posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            if state.status != 201:
                self._reply(state.status, {"error": "bad request"})
                return
            self._reply(201, {"SubscriptionId": f"sub-{len(state.posted)}",
                              "SubscriptionInstances": None})

        def do_DELETE(self) -> None:
            state.deleted.append(self.path)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/ric/v1"
    server.shutdown()
    server.server_close()


def controls() -> Controls:
    return Controls(e2=E2Config(ran_function_id=2, nodes=[E2Node("gnb_001_001_00000001",
                                                                ["00101000000001"])],
                                kpm=KpmConfig(reporting_period_ms=1000,
                                              granularity_period_ms=500)))


def test_cells_from_config_in_both_spellings() -> None:
    assert parse_cell("00101000000001") == parse_cell("00101-000000001") == NrCgi("00101", 1)
    assert parse_cell("310410000000abc") == NrCgi("310410", 0xABC)
    with pytest.raises(ValueError, match="cell"):
        parse_cell("12345")


def test_exact_body_with_swagger_field_names(submgr: tuple[Submgr, str]) -> None:
    state, url = submgr
    (cell_sub,) = plan(controls())
    client = SubmgrClient(url, ClientEndpoint("service-ricxapp-kdran-xapp-http.ricxapp", 8080),
                          2, SubscriptionTable())
    assert client.subscribe(cell_sub) == "sub-1"
    (body,) = state.posted
    trigger = body["SubscriptionDetails"][0]["EventTriggers"]
    action = body["SubscriptionDetails"][0]["ActionToBeSetupList"][0]["ActionDefinition"]
    assert body == {
        "SubscriptionId": "",
        "ClientEndpoint": {"Host": "service-ricxapp-kdran-xapp-http.ricxapp", "HTTPPort": 8080,
                           "RMRPort": 4560},
        "Meid": "gnb_001_001_00000001",
        "RANFunctionID": 2,
        "SubscriptionDetails": [{
            "XappEventInstanceId": 1,
            "EventTriggers": trigger,
            "ActionToBeSetupList": [{
                "ActionID": 1, "ActionType": "report", "ActionDefinition": action,
                "SubsequentAction": {"SubsequentActionType": "continue", "TimeToWait": "zero"}}],
        }],
    }
    assert all(isinstance(b, int) and 0 <= b <= 255 for b in trigger + action)
    assert decode_event_trigger(bytes(trigger)) == EventTrigger(1000)
    assert decode_action_definition(bytes(action)) == ActionDefinition(
        KDRAN_MEASUREMENTS, 500, cell=NrCgi("00101", 1))


def test_async_response_activates_and_delete_on_shutdown(submgr: tuple[Submgr, str]) -> None:
    state, url = submgr
    table = SubscriptionTable()
    client = SubmgrClient(url, ClientEndpoint("xapp", 8080), 2, table)
    (cell_sub,) = plan(controls())
    sub_id = client.subscribe(cell_sub)
    client.on_response({"SubscriptionId": sub_id, "SubscriptionInstances": [
        {"XappEventInstanceId": 1, "E2EventInstanceId": 77, "ErrorCause": None,
         "ErrorSource": None, "TimeoutType": None}]})
    subscribed = table.get(77)
    assert subscribed is not None and subscribed.cell == "00101-000000001"
    assert subscribed.e2_node == "gnb_001_001_00000001"
    client.delete_all()
    assert state.deleted == [f"/ric/v1/subscriptions/{sub_id}"] and table.get(77) is None


def test_refusals(submgr: tuple[Submgr, str]) -> None:
    state, url = submgr
    table = SubscriptionTable()
    client = SubmgrClient(url, ClientEndpoint("xapp", 8080), 2, table)
    (cell_sub,) = plan(controls())
    sub_id = client.subscribe(cell_sub)
    client.on_response({"SubscriptionId": sub_id, "SubscriptionInstances": [
        {"XappEventInstanceId": 1, "E2EventInstanceId": 0, "ErrorCause": "RICrequest/funcId",
         "ErrorSource": "E2Node"}]})
    assert len(table) == 0
    state.status = 400
    with pytest.raises(SubmgrError, match="HTTP 400"):
        client.subscribe(cell_sub)
    with pytest.raises(SubmgrError, match="unreachable"):
        SubmgrClient("http://127.0.0.1:9/ric/v1", ClientEndpoint("x", 1), 2, table,
                     timeout_s=1).subscribe(cell_sub)
