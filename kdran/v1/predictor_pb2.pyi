from kdran.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FallbackReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FALLBACK_REASON_NONE: _ClassVar[FallbackReason]
    FALLBACK_REASON_NO_MODEL: _ClassVar[FallbackReason]
    FALLBACK_REASON_MODEL_ERROR: _ClassVar[FallbackReason]
    FALLBACK_REASON_DEADLINE: _ClassVar[FallbackReason]
FALLBACK_REASON_NONE: FallbackReason
FALLBACK_REASON_NO_MODEL: FallbackReason
FALLBACK_REASON_MODEL_ERROR: FallbackReason
FALLBACK_REASON_DEADLINE: FallbackReason

class Observation(_message.Message):
    __slots__ = ("ue_id", "slot", "srs", "history", "ue_group")
    UE_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    SRS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    UE_GROUP_FIELD_NUMBER: _ClassVar[int]
    ue_id: str
    slot: int
    srs: _tensor_pb2.Tensor
    history: _tensor_pb2.Tensor
    ue_group: str
    def __init__(self, ue_id: _Optional[str] = ..., slot: _Optional[int] = ..., srs: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., history: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., ue_group: _Optional[str] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("ue_id", "slot", "ready", "future", "best_beam", "top_beams", "top_scores", "model_version", "fallback", "fallback_reason")
    UE_ID_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    FUTURE_FIELD_NUMBER: _ClassVar[int]
    BEST_BEAM_FIELD_NUMBER: _ClassVar[int]
    TOP_BEAMS_FIELD_NUMBER: _ClassVar[int]
    TOP_SCORES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    ue_id: str
    slot: int
    ready: bool
    future: _tensor_pb2.Tensor
    best_beam: int
    top_beams: _containers.RepeatedScalarFieldContainer[int]
    top_scores: _containers.RepeatedScalarFieldContainer[float]
    model_version: str
    fallback: bool
    fallback_reason: FallbackReason
    def __init__(self, ue_id: _Optional[str] = ..., slot: _Optional[int] = ..., ready: _Optional[bool] = ..., future: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., best_beam: _Optional[int] = ..., top_beams: _Optional[_Iterable[int]] = ..., top_scores: _Optional[_Iterable[float]] = ..., model_version: _Optional[str] = ..., fallback: _Optional[bool] = ..., fallback_reason: _Optional[_Union[FallbackReason, str]] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("ue_id", "history", "horizon")
    UE_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    HORIZON_FIELD_NUMBER: _ClassVar[int]
    ue_id: str
    history: _tensor_pb2.Tensor
    horizon: int
    def __init__(self, ue_id: _Optional[str] = ..., history: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., horizon: _Optional[int] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("prediction",)
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    prediction: Prediction
    def __init__(self, prediction: _Optional[_Union[Prediction, _Mapping]] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
    __slots__ = ("observations",)
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    observations: _containers.RepeatedCompositeFieldContainer[Observation]
    def __init__(self, observations: _Optional[_Iterable[_Union[Observation, _Mapping]]] = ...) -> None: ...

class PredictBatchResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ...) -> None: ...
