"""Each bad input gets its gRPC status code and a message; the server keeps serving."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
from dapp_helpers import MakeArtifact, doppler_channels

from csi.presets import STD, TINY, Preset
from csi.wire import pack
from dapp import convert
from dapp.artifact import sha256_bytes
from dapp.client import DappClient
from dapp.messages import Observation
from dapp.server import DappServer
from kdran.v1 import model_manager_pb2 as mm
from kdran.v1 import predictor_pb2 as pb
from kdran.v1 import tensor_pb2

Code = grpc.StatusCode
GOOD = doppler_channels(1, TINY.history, seed=9)[0]


def _predict_tensor(client: DappClient, tensor: tensor_pb2.Tensor, horizon: int = 0) -> None:
    client.predictor.Predict(pb.PredictRequest(history=tensor, horizon=horizon), timeout=10)


def _with(array: np.ndarray, value: complex) -> np.ndarray:
    out = array.copy()
    out[2, 3, 4] = value
    return out


def _observe(client: DappClient, *messages: pb.Observation) -> None:
    for _ in client.predictor.Observe(iter(messages), timeout=10):
        pass


def _deploy(client: DappClient, header: mm.DeployHeader | None, chunks: list[bytes]) -> None:
    def requests() -> Iterator[mm.DeployRequest]:
        if header is not None:
            yield mm.DeployRequest(header=header)
        for chunk in chunks:
            yield mm.DeployRequest(chunk=chunk)

    client.manager.DeployModel(requests(), timeout=30)


def _deploy_file(client: DappClient, data: bytes, version: str = "v9", digest: str = "",
                 mode: int = mm.DeployHeader.SHADOW, total: int | None = None) -> None:
    header = mm.DeployHeader(version=version, sha256=digest or sha256_bytes(data), mode=mode,
                             total_size=len(data) if total is None else total)
    _deploy(client, header, [data])


def _model(make_artifact: MakeArtifact, kind: str, version: str,
           preset: Preset = TINY) -> bytes:
    return (make_artifact(kind, version, preset) / "model.onnx").read_bytes()


Case = Callable[[DappClient, MakeArtifact], None]
CASES: dict[str, tuple[Case, grpc.StatusCode, str]] = {
    "wrong shape": (lambda c, m: c.predict(GOOD[:, :7]), Code.INVALID_ARGUMENT, "antenna=8"),
    "wrong byte count": (lambda c, m: _predict_tensor(c, tensor_pb2.Tensor(
        shape=[TINY.history, 8, 12], data=pack(GOOD)[0][:-8])), Code.INVALID_ARGUMENT, "bytes"),
    "float32 dtype": (lambda c, m: _predict_tensor(c, tensor_pb2.Tensor(
        dtype=tensor_pb2.Tensor.FLOAT32, shape=[TINY.history, 8, 12, 2],
        data=GOOD.view(np.float32).tobytes())), Code.INVALID_ARGUMENT, "dtype FLOAT32"),
    "NaN": (lambda c, m: c.predict(_with(GOOD, complex(np.nan, 0))), Code.INVALID_ARGUMENT,
            "NaN or Inf"),
    "Inf": (lambda c, m: c.predict(_with(GOOD, complex(0, np.inf))), Code.INVALID_ARGUMENT,
            "NaN or Inf"),
    "short history": (lambda c, m: c.predict(GOOD[:3]), Code.INVALID_ARGUMENT, "needs 8"),
    "horizon too long": (lambda c, m: c.predict(GOOD, horizon=9), Code.INVALID_ARGUMENT,
                         "horizon 9"),
    "message over 8 MiB": (lambda c, m: c.predict(np.ones((11000, 8, 12), np.complex64)),
                           Code.RESOURCE_EXHAUSTED, ""),
    "delta of unknown UE": (lambda c, m: c.predict_batch([Observation("ghost", 5, srs=GOOD[0])]),
                            Code.FAILED_PRECONDITION, "unknown UE 'ghost'"),
    "slot not increasing": (lambda c, m: _observe(
        c, convert.observation_to_proto(Observation("s", 9, history=GOOD)),
        convert.observation_to_proto(Observation("s", 9, srs=GOOD[0]))),
        Code.INVALID_ARGUMENT, "not after"),
    "empty ue_id": (lambda c, m: c.predict_batch([Observation("", 7, history=GOOD)]),
                    Code.INVALID_ARGUMENT, "ue_id"),
    "no payload": (lambda c, m: _observe(c, pb.Observation(ue_id="p", slot=1)),
                   Code.INVALID_ARGUMENT, "neither srs nor history"),
    "history longer than its slots": (
        lambda c, m: c.predict_batch([Observation("h", 2, history=GOOD)]),
        Code.INVALID_ARGUMENT, "1..3 steps"),
    "duplicate UE in batch": (lambda c, m: c.predict_batch(
        [Observation("d", 7, history=GOOD), Observation("d", 7, history=GOOD)]),
        Code.INVALID_ARGUMENT, "twice"),
    "empty batch": (lambda c, m: c.predict_batch([]), Code.INVALID_ARGUMENT, "1..256"),
    "digest mismatch": (lambda c, m: _deploy_file(c, _model(m, "linear", "v9"),
                                                  digest="0" * 64),
                        Code.FAILED_PRECONDITION, "sha256 mismatch"),
    "oversized chunk": (lambda c, m: _deploy_file(c, b"\0" * (5 << 20)),
                        Code.RESOURCE_EXHAUSTED, "chunk of 5242880 bytes"),
    "model over size limit": (lambda c, m: _deploy_file(c, b"\0" * 10, total=1 << 30),
                              Code.RESOURCE_EXHAUSTED, "exceeds the limit"),
    "fewer bytes than announced": (lambda c, m: _deploy_file(c, b"\0" * 10, total=11,
                                                             digest="a" * 64),
                                   Code.INVALID_ARGUMENT, "received 10 bytes"),
    "model of another task": (lambda c, m: _deploy_file(c, _model(m, "linear", "v9", STD)),
                              Code.FAILED_PRECONDITION, "does not fit"),
    "not an ONNX file": (lambda c, m: _deploy_file(c, b"definitely not onnx"),
                         Code.FAILED_PRECONDITION, "does not load"),
    "metadata version differs": (lambda c, m: _deploy_file(c, _model(m, "linear", "v8")),
                                 Code.FAILED_PRECONDITION, "!= deployed version"),
    "chunk before header": (lambda c, m: _deploy(c, None, [b"abc"]), Code.INVALID_ARGUMENT,
                            "header"),
    "mode unspecified": (lambda c, m: _deploy_file(c, _model(m, "linear", "v9"), mode=0),
                         Code.INVALID_ARGUMENT, "SHADOW or ACTIVE"),
    "unsafe version": (lambda c, m: _deploy_file(c, b"x", version="../etc"),
                       Code.INVALID_ARGUMENT, "must match"),
    "same version, other digest": (lambda c, m: _deploy_file(c, _model(m, "outdated", "lin-1"),
                                                             "lin-1", mode=mm.DeployHeader.ACTIVE),
                                   Code.ALREADY_EXISTS, "installed with sha256"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_its_status_and_server_keeps_serving(
        name: str, client: DappClient, make_artifact: MakeArtifact) -> None:
    case, code, message = CASES[name]
    with client.open_stream() as bystander:               # another client mid-stream
        bystander.send(Observation("bystander", TINY.history - 1, history=GOOD))
        with pytest.raises(grpc.RpcError) as err:
            case(client, make_artifact)
        assert err.value.code() == code, err.value.details()
        assert message in (err.value.details() or "")
        answer = bystander.send(Observation("bystander", TINY.history, srs=GOOD[0]))
        assert answer.ready and answer.model_version == "lin-1"
    assert client.predict(GOOD).model_version == "lin-1"
    assert client.status().versions.active == "lin-1"


def test_refused_deploys_are_counted(dapp: DappServer, client: DappClient,
                                     make_artifact: MakeArtifact) -> None:
    for name in ("digest mismatch", "not an ONNX file", "model of another task"):
        with pytest.raises(grpc.RpcError):
            CASES[name][0](client, make_artifact)
    registry = dapp.metrics.registry
    for reason in ("digest", "invalid_model", "unfit"):
        value = registry.get_sample_value("kdran_dapp_model_load_failures_total",
                                          {"reason": reason})
        assert value == 1.0, reason
