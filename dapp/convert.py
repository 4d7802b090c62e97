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
    return fill_tensor(tensor_pb2.Tensor(), array)


def fill_tensor(tensor: tensor_pb2.Tensor, array: np.ndarray) -> tensor_pb2.Tensor:
    """Write ``array`` into ``tensor`` in place (complex -> complex64, real -> float32) and
    return it. Filling a message's own field (``fill_tensor(msg.future, x)``) copies the payload
    once into the message, where building a ``Tensor`` and passing it to a constructor or
    ``CopyFrom`` copies it again."""
    complex_ = np.iscomplexobj(array)
    data, shape = pack(array, COMPLEX64_LE if complex_ else FLOAT32_LE)
    tensor.SetInParent()                    # present even when every field is at its default
    tensor.dtype = tensor_pb2.Tensor.COMPLEX64 if complex_ else tensor_pb2.Tensor.FLOAT32
    del tensor.shape[:]
    tensor.shape.extend(shape)
    tensor.data = data
    return tensor


def from_tensor(tensor: tensor_pb2.Tensor, name: str,
                dtype: int = tensor_pb2.Tensor.COMPLEX64) -> np.ndarray:
    """Tensor -> read-only array view; ``InvalidInput`` on a dtype or size mismatch."""
    try:
        return _unpack_tensor(tensor, dtype)
    except ValueError as err:
        raise InvalidInput(f"{name}: {err}") from None


def _unpack_tensor(tensor: tensor_pb2.Tensor, dtype: int) -> np.ndarray:
    """``from_tensor`` without the field name: a plain ``ValueError`` on a mismatch, so that
    callers format the name only when there is an error."""
    if tensor.dtype != dtype:
        raise ValueError(f"dtype {_dtype_name(tensor.dtype)}, expected {_dtype_name(dtype)}")
    return unpack(tensor.data, tensor.shape, _DTYPES[dtype])


def _dtype_name(code: int) -> str:
    """Name of a ``Tensor.DType`` code; proto3 enums are open, so a client may send any int."""
    try:
        return str(tensor_pb2.Tensor.DType.Name(code))
    except ValueError:
        return f"unknown code {code}"


def observation_from_proto(msg: pb.Observation) -> Observation:
    """``kdran.v1.Observation`` -> ``Observation`` (payload required)."""
    kind, ue_id = msg.WhichOneof("payload"), msg.ue_id
    if kind is None:
        raise InvalidInput(f"observation of UE {ue_id!r} has neither srs nor history")
    try:
        array = _unpack_tensor(msg.srs if kind == "srs" else msg.history,
                               tensor_pb2.Tensor.COMPLEX64)
    except ValueError as err:
        raise InvalidInput(f"{kind} of UE {ue_id!r}: {err}") from None
    if kind == "srs":
        return Observation(ue_id, msg.slot, srs=array, group=msg.ue_group)
    return Observation(ue_id, msg.slot, history=array, group=msg.ue_group)


def observation_to_proto(obs: Observation, msg: pb.Observation | None = None) -> pb.Observation:
    """``Observation`` -> ``kdran.v1.Observation``, written into ``msg`` when given (e.g.
    ``request.observations.add()``) or into a new message; returns it."""
    if msg is None:
        msg = pb.Observation()
    msg.ue_id, msg.slot, msg.ue_group = obs.ue_id, obs.slot, obs.group
    if obs.srs is not None:
        fill_tensor(msg.srs, obs.srs)
    elif obs.history is not None:
        fill_tensor(msg.history, obs.history)
    return msg


def answer_to_proto(answer: Answer, msg: pb.Prediction | None = None) -> pb.Prediction:
    """``Answer`` -> ``kdran.v1.Prediction``, written into ``msg`` when given (a field of the
    response, e.g. ``reply.prediction`` or ``reply.predictions.add()``: no second copy of the
    prediction into the response) or into a new message; returns it."""
    if msg is None:
        msg = pb.Prediction()
    msg.ue_id, msg.slot, msg.ready = answer.ue_id, answer.slot, answer.ready
    msg.model_version, msg.fallback = answer.model_version, answer.fallback
    msg.fallback_reason = _REASONS[answer.fallback_reason]
    if answer.ready and answer.future is not None:
        fill_tensor(msg.future, answer.future)
        assert answer.top_beams is not None and answer.top_scores is not None
        msg.best_beam = answer.best_beam
        msg.top_beams.extend(answer.top_beams.tolist())
        msg.top_scores.extend(answer.top_scores.tolist())
    return msg


def answer_from_proto(msg: pb.Prediction) -> Answer:
    """``kdran.v1.Prediction`` -> ``Answer`` (future copied out of the message buffer)."""
    if not msg.ready:
        return Answer(msg.ue_id, msg.slot, False)
    future = np.array(from_tensor(msg.future, "future"))
    # list() first: numpy reads a repeated field several times faster from a list
    return Answer(msg.ue_id, msg.slot, True, future, np.array(list(msg.top_beams), np.int64),
                  np.array(list(msg.top_scores), np.float32), msg.model_version,
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
