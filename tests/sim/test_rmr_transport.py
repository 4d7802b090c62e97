"""RmrEndpoint over the real RMR library: needs librmr_si.so, so marked ``rmr`` (deselected by
default). sim.rmr_transport is imported inside the tests so collection works without the library."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sim.transport import E2Message, TransportError
from xapp.e2 import KpmHeader, rmr_types
from xapp.e2.e2ap import (
    RicIndication,
    RicRequestId,
    SubscriptionDeleteRequest,
    decode_e2ap,
    encode_e2ap,
)
from xapp.e2.kpm_codec import encode_indication_header

pytestmark = pytest.mark.rmr

UNROUTED_MTYPE = 12099


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(xApp port, E2 node port) and a static route table for them in RMR_SEED_RT."""
    xapp_port, node_port = _free_port(), _free_port()
    table = tmp_path / "e2.rt"
    table.write_text("newrt|start\n"
                     f"rte|{rmr_types.RIC_INDICATION}|127.0.0.1:{xapp_port}\n"
                     f"rte|{rmr_types.RIC_SUB_DEL_REQ}|127.0.0.1:{node_port}\n"
                     "newrt|end\n")
    monkeypatch.setenv("RMR_SEED_RT", str(table))
    monkeypatch.setenv("RMR_RTG_SVC", "-1")  # static table only, no routing manager
    return xapp_port, node_port


def _indication_payload() -> bytes:
    header = encode_indication_header(KpmHeader(datetime(2025, 1, 1, tzinfo=UTC)))
    return encode_e2ap(RicIndication(RicRequestId(7, 5), 2, 1, header, b"\x00\x01kpm",
                                     sequence_number=3))


def test_indication_crosses_rmr_byte_identical(ports: tuple[int, int]) -> None:
    from sim.rmr_transport import RmrEndpoint
    xapp_port, node_port = ports
    payload = _indication_payload()
    with RmrEndpoint(xapp_port) as ric, RmrEndpoint(node_port) as node:
        assert ric.receive(timeout=0) is None  # nothing yet: a poll returns None
        node.send(E2Message(rmr_types.RIC_INDICATION, payload, 5))
        got = ric.receive(timeout=10.0)
        assert got == E2Message(rmr_types.RIC_INDICATION, payload, 5)
        assert isinstance(decode_e2ap(got.payload), RicIndication)
        request = encode_e2ap(SubscriptionDeleteRequest(RicRequestId(7, 5), 2))
        ric.send(E2Message(rmr_types.RIC_SUB_DEL_REQ, request, 5))  # the other direction
        back = node.receive(timeout=10.0)
        assert back is not None and (back.mtype, back.payload, back.sub_id) == (
            rmr_types.RIC_SUB_DEL_REQ, request, 5)


def test_unroutable_send_and_closed_endpoint_raise(ports: tuple[int, int]) -> None:
    from sim.rmr_transport import RmrEndpoint
    node = RmrEndpoint(ports[1])
    with pytest.raises(TransportError, match="state"):
        node.send(E2Message(UNROUTED_MTYPE, _indication_payload()))
    node.close()
    assert node.receive(timeout=0) is None
    with pytest.raises(TransportError, match="closed"):
        node.send(E2Message(rmr_types.RIC_INDICATION, _indication_payload()))
