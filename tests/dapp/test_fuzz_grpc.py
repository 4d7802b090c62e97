"""Hypothesis-driven malformed gRPC messages against a live dApp.

Shapes, sizes, dtype codes and byte counts, NaN/Inf, wrong order on streams (deltas before a
start, slots going back, unknown UEs), duplicate UEs in a batch, and garbage DeployModel streams.
Every call must either succeed or fail with one of the well-defined status codes below (never
UNKNOWN / INTERNAL, i.e. never an unhandled exception), and a good client must still be served
after every example. The default run is bounded to a few seconds; ``-m slow`` runs the long one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
from dapp_helpers import doppler_channels, start_dapp, write_test_artifact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csi.presets import TINY
from dapp import convert
from dapp.client import DappClient
from dapp.server import DappServer
from kdran.v1 import model_manager_pb2 as mm
from kdran.v1 import predictor_pb2 as pb
from kdran.v1 import tensor_pb2

Code = grpc.StatusCode
ALLOWED = {Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION, Code.RESOURCE_EXHAUSTED,
           Code.ALREADY_EXISTS}
GOOD = doppler_channels(1, TINY.history + 2, seed=21)[0]
FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=1500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DappServer, DappClient]]:
    """One dApp (tiny, linear model) and a client, shared by every example of the module."""
    root = tmp_path_factory.mktemp("fuzz")
    server = start_dapp(root / "state",
                        write_test_artifact(root / "seed", "linear", "lin-1"))
    client = DappClient(f"127.0.0.1:{server.port}", timeout_s=10.0)
    client.wait_ready()
    yield server, client
    client.close()
    server.stop(grace_s=0.5)


# -- strategies -------------------------------------------------------------------------------
_GEOMETRY = (TINY.n_ant, TINY.n_rb)
_dims = st.one_of(st.sampled_from([0, 1, TINY.history, *_GEOMETRY]),
                  st.integers(-3, 40), st.integers(2**31, 2**62))


@st.composite
def tensors(draw: st.DrawFn) -> tensor_pb2.Tensor:
    """A Tensor that is right, nearly right, or garbage: shape, dtype code, byte count, values."""
    kind = draw(st.sampled_from(["srs", "history", "random"]))
    if kind == "random":
        shape = draw(st.lists(_dims, max_size=5))
        data = draw(st.binary(max_size=4096))
        return tensor_pb2.Tensor(dtype=draw(st.integers(0, 5)), shape=shape, data=data)
    lead = (draw(st.integers(1, TINY.history + 2)),) if kind == "history" else ()
    values = np.asarray(GOOD[-1] if not lead else GOOD[-lead[0]:], np.complex64)
    values = np.broadcast_to(values, (*lead, *_GEOMETRY)).copy()
    poison = draw(st.sampled_from([None, np.nan, np.inf, -np.inf, 1e38]))
    if poison is not None:
        values.flat[draw(st.integers(0, values.size - 1))] = poison
    tensor = convert.to_tensor(values)
    cut = draw(st.integers(0, 3))                 # 0: intact; else drop bytes (dtype length)
    if cut:
        tensor.data = tensor.data[:-cut]
    if draw(st.booleans()):
        tensor.dtype = tensor_pb2.Tensor.FLOAT32
    return tensor


@st.composite
def observations(draw: st.DrawFn, ues: tuple[str, ...] = ("u0", "u1", "u2")) -> pb.Observation:
    """An observation of a few UE ids (or odd ones), any slot, a delta, a start or nothing."""
    msg = pb.Observation(ue_id=draw(st.one_of(st.sampled_from(ues), st.text(max_size=200))),
                         slot=draw(st.integers(0, 2**64 - 1)),
                         ue_group=draw(st.text(max_size=8)))
    payload = draw(st.sampled_from(["srs", "history", "none"]))
    if payload != "none":
        getattr(msg, payload).CopyFrom(draw(tensors()))
    return msg


@st.composite
def deploy_streams(draw: st.DrawFn) -> list[mm.DeployRequest]:
    """Garbage DeployModel streams: missing/duplicate headers, bad fields, random chunks."""
    parts: list[mm.DeployRequest] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            parts.append(mm.DeployRequest(header=mm.DeployHeader(
                version=draw(st.text(max_size=70)),
                sha256=draw(st.one_of(st.text(max_size=64), st.just("a" * 64))),
                mode=draw(st.integers(0, 4)), total_size=draw(st.integers(0, 2**40)),
                card_json=draw(st.one_of(st.just(""), st.just("[1]"), st.text(max_size=30))),
                signature=draw(st.binary(max_size=80)),
                signing_key_id=draw(st.text(max_size=20)))))
        else:
            parts.append(mm.DeployRequest(chunk=draw(st.binary(max_size=512))))
    return parts


# -- checks -----------------------------------------------------------------------------------
def _well_defined(call: Callable[[], object]) -> None:
    try:
        call()
    except grpc.RpcError as err:
        assert err.code() in ALLOWED, (err.code(), err.details())
        assert err.details(), "a refusal must say why"


def _still_serving(client: DappClient) -> None:
    assert client.predict(GOOD[-TINY.history:]).model_version == "lin-1"


def _drain(it: Iterator[object]) -> None:
    for _ in it:
        pass


def _predict(client: DappClient, tensor: tensor_pb2.Tensor, horizon: int) -> None:
    client.predictor.Predict(pb.PredictRequest(history=tensor, horizon=horizon), timeout=10)


def _run_predict(served: tuple[DappServer, DappClient], tensor: tensor_pb2.Tensor,
                 horizon: int) -> None:
    client = served[1]
    _well_defined(lambda: _predict(client, tensor, horizon))
    _still_serving(client)


def _run_stream(served: tuple[DappServer, DappClient], msgs: list[pb.Observation]) -> None:
    client = served[1]
    _well_defined(lambda: _drain(client.predictor.Observe(iter(msgs), timeout=10)))
    _well_defined(lambda: client.predictor.PredictBatch(
        pb.PredictBatchRequest(observations=msgs), timeout=10))
    _still_serving(client)


def _run_deploy(served: tuple[DappServer, DappClient], parts: list[mm.DeployRequest]) -> None:
    server, client = served
    _well_defined(lambda: client.manager.DeployModel(iter(parts), timeout=10))
    assert list(server.manager.store.incoming.iterdir()) == []
    assert client.status().versions.active == "lin-1"
    _still_serving(client)


# -- bounded default run ----------------------------------------------------------------------
@FAST
@given(tensor=tensors(), horizon=st.integers(-1, 2**31))
def test_fuzz_predict(served: tuple[DappServer, DappClient], tensor: tensor_pb2.Tensor,
                      horizon: int) -> None:
    _run_predict(served, tensor, max(horizon, 0))


@FAST
@given(msgs=st.lists(observations(), max_size=6))
def test_fuzz_observe_and_batch(served: tuple[DappServer, DappClient],
                                msgs: list[pb.Observation]) -> None:
    _run_stream(served, msgs)


@FAST
@given(parts=deploy_streams())
def test_fuzz_deploy(served: tuple[DappServer, DappClient],
                     parts: list[mm.DeployRequest]) -> None:
    _run_deploy(served, parts)


# -- long run (make fuzz / -m slow) -----------------------------------------------------------
@pytest.mark.slow
@LONG
@given(tensor=tensors(), horizon=st.integers(0, 2**31), msgs=st.lists(observations(), max_size=8),
       parts=deploy_streams())
def test_fuzz_everything_long(served: tuple[DappServer, DappClient], tensor: tensor_pb2.Tensor,
                              horizon: int, msgs: list[pb.Observation],
                              parts: list[mm.DeployRequest]) -> None:
    _run_predict(served, tensor, horizon)
    _run_stream(served, msgs)
    _run_deploy(served, parts)
