"""gRPC servicers: ``ChannelPredictor`` (data plane) and ``ModelManager`` (control plane).

Thin adapters: decode the request (``dapp.convert``), call the ``Engine`` / ``ModelManager``,
encode the answer. A ``DappError`` becomes ``context.abort(error.code, message)``; it ends only
the offending call (a stream ends at the bad message), everything else keeps being served.
Latency is measured from the decoded request to the encoded answer (per message on a stream).
The engine's background work for a message (online scoring, shadow run) is queued once its reply
is sent (``Engine.observe_deferred``), so that it does not compete for the GIL with the answer.
Per-client limits (``dapp.limits.ServiceLimits``): each ``Observe`` stream has a token bucket,
each client (gRPC peer) one more for its ``Predict``/``PredictBatch`` observations,
``ExportRecentCsi`` is bounded in sequences and bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn, TypeVar

import grpc

from dapp import convert
from dapp.engine import Engine
from dapp.errors import Cancelled, DappError, InvalidInput, TooLarge
from dapp.limits import MAX_BATCH, ServiceLimits
from dapp.manager import DeploySpec, ModelManager
from dapp.metrics import DappMetrics
from dapp.ratelimit import ClientBuckets, TokenBucket
from kdran.v1 import model_manager_pb2 as mm
from kdran.v1 import model_manager_pb2_grpc as mm_grpc
from kdran.v1 import predictor_pb2 as pb
from kdran.v1 import predictor_pb2_grpc as pb_grpc

T = TypeVar("T")


def _abort(context: grpc.ServicerContext, err: DappError) -> NoReturn:
    context.abort(err.code, str(err))
    raise AssertionError("context.abort returned")      # pragma: no cover - abort raises


def _guarded(context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
    """Run ``fn``; a ``DappError`` aborts the call with its status code."""
    try:
        return fn()
    except DappError as err:
        _abort(context, err)


def _deadline_at(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.perf_counter() + remaining


class PredictorService(pb_grpc.ChannelPredictorServicer):
    """Data plane on top of an ``Engine``."""

    def __init__(self, engine: Engine, metrics: DappMetrics, max_batch: int = MAX_BATCH,
                 limits: ServiceLimits | None = None) -> None:
        self.engine, self.metrics, self.max_batch = engine, metrics, max_batch
        self.limits = limits or ServiceLimits()
        self._unary = (ClientBuckets(self.limits.unary_rate, self.limits.unary_burst)
                       if self.limits.unary_rate > 0 else None)

    def _check_unary_rate(self, context: grpc.ServicerContext, observations: int) -> None:
        """RESOURCE_EXHAUSTED when this client's unary calls exceed their observation rate."""
        if self._unary is not None and not self._unary.take(context.peer(), observations):
            raise TooLarge(f"client exceeds its rate limit of {self.limits.unary_rate:g} "
                           f"observations/s over Predict/PredictBatch (burst "
                           f"{self.limits.unary_burst})")

    def Observe(self, request_iterator: Iterator[pb.Observation],
                context: grpc.ServicerContext) -> Iterator[pb.Prediction]:
        """One answer per observation, in order; RESOURCE_EXHAUSTED past the stream's rate."""
        rate, burst = self.limits.stream_rate, self.limits.stream_burst
        bucket = TokenBucket(rate, burst) if rate > 0 else None
        observe, record = self.engine.observe_deferred, self.metrics.observe_latency
        for msg in request_iterator:
            if bucket is not None and not bucket.take():
                _abort(context, TooLarge(f"stream exceeds its rate limit of {rate:g} "
                                         f"observations/s (burst {burst})"))
            t0 = time.perf_counter()
            try:
                answers, background = observe([convert.observation_from_proto(msg)],
                                              _deadline_at(context))
            except DappError as err:
                _abort(context, err)
            try:
                reply = convert.answer_to_proto(answers[0])
                record("Observe", time.perf_counter() - t0)
                yield reply
            finally:
                background()            # gRPC resumes the stream once the reply is sent

    def Predict(self, request: pb.PredictRequest,
                context: grpc.ServicerContext) -> pb.PredictResponse:
        """Stateless prediction from a full history."""
        t0 = time.perf_counter()
        try:
            self._check_unary_rate(context, 1)
            history = convert.from_tensor(request.history, "history")
            answer = self.engine.predict(history, request.horizon, request.ue_id,
                                         _deadline_at(context))
        except DappError as err:
            _abort(context, err)
        reply = pb.PredictResponse()
        convert.answer_to_proto(answer, reply.prediction)
        self.metrics.observe_latency("Predict", time.perf_counter() - t0)
        return reply

    def PredictBatch(self, request: pb.PredictBatchRequest,
                     context: grpc.ServicerContext) -> pb.PredictBatchResponse:
        """All UEs of one slot, one model run."""
        t0 = time.perf_counter()
        try:
            if not 1 <= len(request.observations) <= self.max_batch:
                raise InvalidInput(f"PredictBatch takes 1..{self.max_batch} observations, got "
                                   f"{len(request.observations)}")
            self._check_unary_rate(context, len(request.observations))
            observations = [convert.observation_from_proto(o) for o in request.observations]
            answers, background = self.engine.observe_deferred(observations,
                                                               _deadline_at(context))
        except DappError as err:
            _abort(context, err)
        reply = pb.PredictBatchResponse()
        for answer in answers:
            convert.answer_to_proto(answer, reply.predictions.add())
        self.metrics.observe_latency("PredictBatch", time.perf_counter() - t0)
        if not context.add_callback(background):      # runs once the call is over
            background()
        return reply


class ModelManagerService(mm_grpc.ModelManagerServicer):
    """Control plane on top of a ``ModelManager``."""

    def __init__(self, manager: ModelManager, metrics: DappMetrics,
                 limits: ServiceLimits | None = None) -> None:
        self.manager, self.metrics = manager, metrics
        self.limits = limits or ServiceLimits()

    def DeployModel(self, request_iterator: Iterator[mm.DeployRequest],
                    context: grpc.ServicerContext) -> mm.DeployResponse:
        """Header first, then chunks; verified, loaded, installed, role assigned."""
        def run() -> mm.DeployResponse:
            first = next(request_iterator, None)
            if first is None or first.WhichOneof("part") != "header":
                raise InvalidInput("the first DeployRequest must carry the header")
            h = first.header
            if h.mode not in convert.MODE_NAMES:
                raise InvalidInput("header.mode must be SHADOW or ACTIVE")
            spec = DeploySpec(h.version, h.sha256, convert.MODE_NAMES[h.mode], h.total_size,
                              h.card_json, h.signature, h.signing_key_id)
            result = self.manager.deploy(spec, _chunks(request_iterator))
            return mm.DeployResponse(version=result.version, mode=h.mode, sha256=result.sha256,
                                     size_bytes=result.size_bytes, load_ms=result.load_ms,
                                     versions=convert.versions_to_proto(result.versions))

        return _guarded(context, run)

    def Promote(self, request: mm.PromoteRequest,
                context: grpc.ServicerContext) -> mm.ModelVersions:
        """Shadow -> active."""
        return convert.versions_to_proto(
            _guarded(context, lambda: self.manager.promote(request.version)))

    def Rollback(self, request: mm.RollbackRequest,
                 context: grpc.ServicerContext) -> mm.ModelVersions:
        """Previous active -> active."""
        return convert.versions_to_proto(_guarded(context, self.manager.rollback))

    def DiscardShadow(self, request: mm.DiscardShadowRequest,
                      context: grpc.ServicerContext) -> mm.ModelVersions:
        """Unload the shadow model."""
        return convert.versions_to_proto(_guarded(context, self.manager.discard_shadow))

    def GetStatus(self, request: mm.GetStatusRequest,
                  context: grpc.ServicerContext) -> mm.StatusResponse:
        """Versions, online accuracy, latency, counters."""
        engine = self.manager.engine
        status = engine.status()
        task = engine.task
        reply = mm.StatusResponse(
            versions=convert.versions_to_proto(self.manager.versions()),
            predictions=status.predictions, fallbacks=sum(status.fallbacks.values()),
            fallbacks_by_reason=status.fallbacks, uptime_s=status.uptime_s,
            tracked_ues=status.tracked_ues, preset=task.preset, history=task.history,
            horizon=task.horizon, n_ant=task.n_ant, n_rb=task.n_rb, n_beams=task.n_beams,
            background_dropped=status.background_dropped)
        for t in status.tracks:
            reply.models.add(version=t.version, role=t.role, predictions=t.nmse.predictions,
                             scored=t.nmse.scored, nmse_db=t.nmse.nmse_db,
                             nmse_db_p90=t.nmse.nmse_db_p90,
                             nmse_db_per_step=t.nmse.nmse_db_per_step)
        for g in status.groups:
            reply.groups.add(group=g.group, predictions=g.nmse.predictions, fallbacks=g.fallbacks,
                             scored=g.nmse.scored, nmse_db=g.nmse.nmse_db,
                             nmse_db_p90=g.nmse.nmse_db_p90)
        for lat in self.metrics.latency_stats():
            reply.latency.add(rpc=lat.rpc, count=lat.count, p50_us=lat.p50_us,
                              p99_us=lat.p99_us)
        return reply

    def ExportRecentCsi(self, request: mm.ExportRecentCsiRequest,
                        context: grpc.ServicerContext) -> Iterator[mm.CsiSequence]:
        """Recent per-UE sequences, newest first, bounded in count and payload bytes."""
        cap = self.limits.export_sequences
        limit = min(request.max_sequences or cap, cap)
        length = request.sequence_length
        sent = sent_bytes = 0
        for ue_id, group, first_slot, steps in self.manager.engine.history.snapshot(
                request.ue_group):
            for start in _window_starts(len(steps), length):
                window = steps[start:start + (length or len(steps))]
                if sent >= limit or sent_bytes + window.nbytes > self.limits.export_bytes:
                    return
                sequence = mm.CsiSequence(ue_id=ue_id, ue_group=group,
                                          first_slot=first_slot + start)
                convert.fill_tensor(sequence.channel, window)
                yield sequence
                sent, sent_bytes = sent + 1, sent_bytes + window.nbytes


def _window_starts(steps: int, length: int) -> Iterable[int]:
    """Start indices of non-overlapping windows of ``length`` over ``steps``, newest first
    (``length`` 0: one window of everything)."""
    if length == 0:
        return [0]
    return range(steps - length, -1, -length)


def _chunks(requests: Iterator[mm.DeployRequest]) -> Iterator[bytes]:
    """The chunk bytes; a client that cancels midway raises ``Cancelled`` in the consumer."""
    try:
        for msg in requests:
            if msg.WhichOneof("part") != "chunk":
                raise InvalidInput("only the first DeployRequest may carry a header")
            yield msg.chunk
    except grpc.RpcError:           # the request iterator's way of saying the call was cancelled
        raise Cancelled("the upload was cancelled by the client") from None
