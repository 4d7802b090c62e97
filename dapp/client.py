"""A thin typed client of the dApp (used by the DU emulator, the xApp and the benchmark).

Data plane: ``predict`` (stateless), ``predict_batch`` (all UEs of a slot), ``observe`` (pipe an
iterable of observations through one stream) and ``open_stream`` (an ``ObserveStream`` with a
blocking ``send(observation) -> Answer``, one round trip per call). Control plane:
``deploy_model``, ``promote``, ``rollback``, ``discard_shadow``, ``status``,
``export_recent_csi``, ``health``. gRPC errors surface as ``grpc.RpcError`` (``.code()``,
``.details()``). Imports neither ONNX Runtime nor torch. ``tls=ClientTls(...)`` connects with
TLS / mutual TLS (``dapp.tls``); ``deploy_model`` sends the artifact's ``SIGNATURE`` when it has
one (``kdran.signing``).
"""

from __future__ import annotations

import queue
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dapp import convert
from dapp.artifact import CARD_FILE, MODEL_FILE, sha256_file
from dapp.limits import channel_options
from dapp.messages import Answer, CsiRecord, DeployResult, Observation, Versions
from dapp.tls import ClientTls
from kdran.signing import read_signature
from kdran.v1 import model_manager_pb2 as mm
from kdran.v1 import model_manager_pb2_grpc as mm_grpc
from kdran.v1 import predictor_pb2 as pb
from kdran.v1 import predictor_pb2_grpc as pb_grpc

DEFAULT_CHUNK_BYTES = 1 << 20
__all__ = ["ClientTls", "DappClient", "ObserveStream"]


class ObserveStream:
    """One ``Observe`` stream: ``send`` writes an observation and waits for its answer."""

    def __init__(self, stub: pb_grpc.ChannelPredictorStub, timeout_s: float | None) -> None:
        self._requests: queue.SimpleQueue[pb.Observation | None] = queue.SimpleQueue()
        self._call = stub.Observe(iter(self._requests.get, None), timeout=timeout_s)

    def send(self, observation: Observation) -> Answer:
        """Send one observation, return its prediction (raises ``grpc.RpcError`` on error)."""
        self._requests.put(convert.observation_to_proto(observation))
        return convert.answer_from_proto(next(self._call))

    def close(self) -> None:
        """Half-close the stream and drain it."""
        self._requests.put(None)
        for _ in self._call:
            pass

    def __enter__(self) -> ObserveStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            self._call.cancel()


class DappClient:
    """Client of one dApp at ``target`` (``host:port`` or ``unix:/path``); plaintext unless
    ``tls`` is given."""

    def __init__(self, target: str, timeout_s: float = 10.0, tls: ClientTls | None = None,
                 options: Sequence[tuple[str, Any]] = ()) -> None:
        """``options``: extra gRPC channel arguments (e.g. ``("grpc.use_local_subchannel_pool",
        1)`` for a connection of its own instead of one shared with other channels)."""
        self.target, self.timeout_s = target, timeout_s
        if tls is None:
            self.channel = grpc.insecure_channel(target, options=[*channel_options(), *options])
        else:
            self.channel = grpc.secure_channel(
                target, tls.credentials(), options=[*channel_options(), *tls.options(), *options])
        self.predictor = pb_grpc.ChannelPredictorStub(self.channel)
        self.manager = mm_grpc.ModelManagerStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> DappClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Block until the channel is connected (``grpc.FutureTimeoutError`` otherwise)."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout_s)

    def health(self, service: str = "") -> str:
        """Health status name of ``service`` ("" = the whole server), e.g. ``"SERVING"``."""
        reply = self._health.Check(health_pb2.HealthCheckRequest(service=service),
                                   timeout=self.timeout_s)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    # -- data plane -----------------------------------------------------------------------
    def predict(self, history: np.ndarray, horizon: int = 0, ue_id: str = "") -> Answer:
        """Stateless: complex ``[time, antenna, rb]`` -> prediction of ``horizon`` steps."""
        request = pb.PredictRequest(ue_id=ue_id, horizon=horizon)
        convert.fill_tensor(request.history, history)
        reply = self.predictor.Predict(request, timeout=self.timeout_s)
        return convert.answer_from_proto(reply.prediction)

    def predict_batch(self, observations: Sequence[Observation]) -> list[Answer]:
        """One call for the observations of distinct UEs; answers in the same order."""
        request = pb.PredictBatchRequest()
        for obs in observations:
            convert.observation_to_proto(obs, request.observations.add())
        reply = self.predictor.PredictBatch(request, timeout=self.timeout_s)
        return [convert.answer_from_proto(p) for p in reply.predictions]

    def observe(self, observations: Iterable[Observation]) -> Iterator[Answer]:
        """Stream ``observations`` through one ``Observe`` call; yields the answers in order."""
        requests = (convert.observation_to_proto(o) for o in observations)
        for reply in self.predictor.Observe(requests):
            yield convert.answer_from_proto(reply)

    def open_stream(self, timeout_s: float | None = None) -> ObserveStream:
        """An ``Observe`` stream for request/response use (``with client.open_stream() as s``)."""
        return ObserveStream(self.predictor, timeout_s)

    # -- control plane --------------------------------------------------------------------
    def deploy_model(self, directory: str | Path, version: str, mode: str = "shadow",
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> DeployResult:
        """Ship ``directory/model.onnx`` (+ ``card.json`` verbatim, + ``SIGNATURE`` when signed)
        as ``version`` in ``mode`` (``"shadow"`` or ``"active"``)."""
        directory = Path(directory)
        model = directory / MODEL_FILE
        card = directory / CARD_FILE
        signature = read_signature(directory)
        header = mm.DeployHeader(version=version, sha256=sha256_file(model),
                                 mode=convert.MODE_VALUES[mode],
                                 total_size=model.stat().st_size,
                                 card_json=card.read_bytes().decode() if card.is_file() else "",
                                 signature=signature.value if signature else b"",
                                 signing_key_id=signature.key_id if signature else "")

        def requests() -> Iterator[mm.DeployRequest]:
            yield mm.DeployRequest(header=header)
            with model.open("rb") as f:
                while chunk := f.read(chunk_bytes):
                    yield mm.DeployRequest(chunk=chunk)

        reply = self.manager.DeployModel(requests(), timeout=max(self.timeout_s, 60.0))
        return convert.deploy_result_from_proto(reply)

    def promote(self, version: str = "") -> Versions:
        """Make the shadow model (expected ``version``, "" = any) active."""
        return convert.versions_from_proto(
            self.manager.Promote(mm.PromoteRequest(version=version), timeout=self.timeout_s))

    def rollback(self) -> Versions:
        """Restore the previous active model."""
        return convert.versions_from_proto(
            self.manager.Rollback(mm.RollbackRequest(), timeout=self.timeout_s))

    def discard_shadow(self) -> Versions:
        """Unload the shadow model."""
        return convert.versions_from_proto(
            self.manager.DiscardShadow(mm.DiscardShadowRequest(), timeout=self.timeout_s))

    def status(self) -> mm.StatusResponse:
        """The dApp's ``StatusResponse`` (see proto/kdran/v1/model_manager.proto)."""
        return self.manager.GetStatus(mm.GetStatusRequest(), timeout=self.timeout_s)

    def export_recent_csi(self, max_sequences: int = 0, sequence_length: int = 0,
                          ue_group: str = "") -> Iterator[CsiRecord]:
        """Recent per-UE sequences (newest first), at most ``max_sequences`` (0 = server cap)."""
        request = mm.ExportRecentCsiRequest(max_sequences=max_sequences,
                                            sequence_length=sequence_length, ue_group=ue_group)
        for msg in self.manager.ExportRecentCsi(request, timeout=max(self.timeout_s, 60.0)):
            yield convert.csi_record_from_proto(msg)
