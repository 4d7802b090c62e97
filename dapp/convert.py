"""Protobuf <-> numpy / ``dapp.messages`` conversions, with clear errors for malformed tensors.

Tensors travel as ``kdran.v1.Tensor`` (packed little-endian bytes + shape; ``csi.wire``).
Unpacking is zero-copy; a wrong byte count, a negative dimension or an unexpected dtype raises
``InvalidInput`` naming the field.
"""

from __future__ import annotations

import numpy as np

from csi.wire import COMPLEX64_LE, FLOAT32_LE, pack, unpack
from dapp.errors import InvalidInput
from dapp.messages import Answer, CsiRecord, DeployResult, Observation, Versions
from kdran.v1 import model_manager_pb2 as mm
from kdran.v1 import predictor_pb2 as pb
from kdran.v1 import tensor_pb2

_DTYPES: dict[int, np.dtype] = {tensor_pb2.Tensor.COMPLEX64: COMPLEX64_LE,
                                tensor_pb2.Tensor.FLOAT32: FLOAT32_LE}
_REASONS = {None: pb.FALLBACK_REASON_NONE, "no_model": pb.FALLBACK_REASON_NO_MODEL,
            "model_error": pb.FALLBACK_REASON_MODEL_ERROR,
            "deadline": pb.FALLBACK_REASON_DEADLINE}
_REASON_NAMES = {v: k for k, v in _REASONS.items()}
MODE_NAMES = {mm.DeployHeader.SHADOW: "shadow", mm.DeployHeader.ACTIVE: "active"}
MODE_VALUES = {v: k for k, v in MODE_NAMES.items()}


def to_tensor(array: np.ndarray) -> tensor_pb2.Tensor:
    """Complex array -> complex64 Tensor; real array -> float32 Tensor."""
    complex_ = np.iscomplexobj(array)
    data, shape = pack(array, COMPLEX64_LE if complex_ else FLOAT32_LE)
    dtype = tensor_pb2.Tensor.COMPLEX64 if complex_ else tensor_pb2.Tensor.FLOAT32
    return tensor_pb2.Tensor(dtype=dtype, shape=shape, data=data)


def from_tensor(tensor: tensor_pb2.Tensor, name: str,
                dtype: int = tensor_pb2.Tensor.COMPLEX64) -> np.ndarray:
    """Tensor -> read-only array view; ``InvalidInput`` on a dtype or size mismatch."""
    if tensor.dtype != dtype:
        raise InvalidInput(f"{name}: dtype {_dtype_name(tensor.dtype)}, "
                           f"expected {_dtype_name(dtype)}")
    try:
        return unpack(tensor.data, tensor.shape, _DTYPES[dtype])
    except ValueError as err:
        raise InvalidInput(f"{name}: {err}") from None


def _dtype_name(code: int) -> str:
    """Name of a ``Tensor.DType`` code; proto3 enums are open, so a client may send any int."""
    try:
        return str(tensor_pb2.Tensor.DType.Name(code))
    except ValueError:
        return f"unknown code {code}"


def observation_from_proto(msg: pb.Observation) -> Observation:
    """``kdran.v1.Observation`` -> ``Observation`` (payload required)."""
    kind = msg.WhichOneof("payload")
    if kind is None:
        raise InvalidInput(f"observation of UE {msg.ue_id!r} has neither srs nor history")
    array = from_tensor(getattr(msg, kind), f"{kind} of UE {msg.ue_id!r}")
    return Observation(msg.ue_id, msg.slot, group=msg.ue_group, **{kind: array})


def observation_to_proto(obs: Observation) -> pb.Observation:
    """``Observation`` -> ``kdran.v1.Observation``."""
    msg = pb.Observation(ue_id=obs.ue_id, slot=obs.slot, ue_group=obs.group)
    if obs.srs is not None:
        msg.srs.CopyFrom(to_tensor(obs.srs))
    elif obs.history is not None:
        msg.history.CopyFrom(to_tensor(obs.history))
    return msg


def answer_to_proto(answer: Answer) -> pb.Prediction:
    """``Answer`` -> ``kdran.v1.Prediction``."""
    msg = pb.Prediction(ue_id=answer.ue_id, slot=answer.slot, ready=answer.ready,
                        model_version=answer.model_version, fallback=answer.fallback,
                        fallback_reason=_REASONS[answer.fallback_reason])
    if answer.ready and answer.future is not None:
        msg.future.CopyFrom(to_tensor(answer.future))
        assert answer.top_beams is not None and answer.top_scores is not None
        msg.best_beam = answer.best_beam
        msg.top_beams.extend(int(b) for b in answer.top_beams)
        msg.top_scores.extend(float(s) for s in answer.top_scores)
    return msg


def answer_from_proto(msg: pb.Prediction) -> Answer:
    """``kdran.v1.Prediction`` -> ``Answer`` (future copied out of the message buffer)."""
    if not msg.ready:
        return Answer(msg.ue_id, msg.slot, False)
    future = np.array(from_tensor(msg.future, "future"))
    return Answer(msg.ue_id, msg.slot, True, future, np.array(msg.top_beams, np.int64),
                  np.array(msg.top_scores, np.float32), msg.model_version,
                  _REASON_NAMES[msg.fallback_reason])


def versions_to_proto(v: Versions) -> mm.ModelVersions:
    """``Versions`` -> ``kdran.v1.ModelVersions``."""
    return mm.ModelVersions(active=v.active, shadow=v.shadow, previous=v.previous)


def versions_from_proto(msg: mm.ModelVersions) -> Versions:
    """``kdran.v1.ModelVersions`` -> ``Versions``."""
    return Versions(msg.active, msg.shadow, msg.previous)


def deploy_result_from_proto(msg: mm.DeployResponse) -> DeployResult:
    """``kdran.v1.DeployResponse`` -> ``DeployResult``."""
    return DeployResult(msg.version, MODE_NAMES.get(msg.mode, ""), msg.sha256, msg.size_bytes,
                        msg.load_ms, versions_from_proto(msg.versions))


def csi_record_from_proto(msg: mm.CsiSequence) -> CsiRecord:
    """``kdran.v1.CsiSequence`` -> ``CsiRecord`` (channel copied)."""
    return CsiRecord(msg.ue_id, msg.ue_group, msg.first_slot,
                     np.array(from_tensor(msg.channel, "channel")))
