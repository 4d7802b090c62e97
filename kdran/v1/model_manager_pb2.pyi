from kdran.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeployHeader(_message.Message):
    __slots__ = ("version", "sha256", "mode", "total_size", "card_json", "signature", "signing_key_id")
    class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MODE_UNSPECIFIED: _ClassVar[DeployHeader.Mode]
        SHADOW: _ClassVar[DeployHeader.Mode]
        ACTIVE: _ClassVar[DeployHeader.Mode]
    MODE_UNSPECIFIED: DeployHeader.Mode
    SHADOW: DeployHeader.Mode
    ACTIVE: DeployHeader.Mode
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CARD_JSON_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    version: str
    sha256: str
    mode: DeployHeader.Mode
    total_size: int
    card_json: str
    signature: bytes
    signing_key_id: str
    def __init__(self, version: _Optional[str] = ..., sha256: _Optional[str] = ..., mode: _Optional[_Union[DeployHeader.Mode, str]] = ..., total_size: _Optional[int] = ..., card_json: _Optional[str] = ..., signature: _Optional[bytes] = ..., signing_key_id: _Optional[str] = ...) -> None: ...

class DeployRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: DeployHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[DeployHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class DeployResponse(_message.Message):
    __slots__ = ("version", "mode", "sha256", "size_bytes", "load_ms", "versions")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    version: str
    mode: DeployHeader.Mode
    sha256: str
    size_bytes: int
    load_ms: float
    versions: ModelVersions
    def __init__(self, version: _Optional[str] = ..., mode: _Optional[_Union[DeployHeader.Mode, str]] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., load_ms: _Optional[float] = ..., versions: _Optional[_Union[ModelVersions, _Mapping]] = ...) -> None: ...

class ModelVersions(_message.Message):
    __slots__ = ("active", "shadow", "previous")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    active: str
    shadow: str
    previous: str
    def __init__(self, active: _Optional[str] = ..., shadow: _Optional[str] = ..., previous: _Optional[str] = ...) -> None: ...

class PromoteRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DiscardShadowRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelStats(_message.Message):
    __slots__ = ("version", "role", "predictions", "scored", "nmse_db", "nmse_db_p90", "nmse_db_per_step")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    NMSE_DB_FIELD_NUMBER: _ClassVar[int]
    NMSE_DB_P90_FIELD_NUMBER: _ClassVar[int]
    NMSE_DB_PER_STEP_FIELD_NUMBER: _ClassVar[int]
    version: str
    role: str
    predictions: int
    scored: int
    nmse_db: float
    nmse_db_p90: float
    nmse_db_per_step: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, version: _Optional[str] = ..., role: _Optional[str] = ..., predictions: _Optional[int] = ..., scored: _Optional[int] = ..., nmse_db: _Optional[float] = ..., nmse_db_p90: _Optional[float] = ..., nmse_db_per_step: _Optional[_Iterable[float]] = ...) -> None: ...

class GroupStats(_message.Message):
    __slots__ = ("group", "predictions", "fallbacks", "scored", "nmse_db", "nmse_db_p90")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    NMSE_DB_FIELD_NUMBER: _ClassVar[int]
    NMSE_DB_P90_FIELD_NUMBER: _ClassVar[int]
    group: str
    predictions: int
    fallbacks: int
    scored: int
    nmse_db: float
    nmse_db_p90: float
    def __init__(self, group: _Optional[str] = ..., predictions: _Optional[int] = ..., fallbacks: _Optional[int] = ..., scored: _Optional[int] = ..., nmse_db: _Optional[float] = ..., nmse_db_p90: _Optional[float] = ...) -> None: ...

class LatencySummary(_message.Message):
    __slots__ = ("rpc", "count", "p50_us", "p99_us")
    RPC_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    P50_US_FIELD_NUMBER: _ClassVar[int]
    P99_US_FIELD_NUMBER: _ClassVar[int]
    rpc: str
    count: int
    p50_us: float
    p99_us: float
    def __init__(self, rpc: _Optional[str] = ..., count: _Optional[int] = ..., p50_us: _Optional[float] = ..., p99_us: _Optional[float] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("versions", "models", "groups", "latency", "predictions", "fallbacks", "fallbacks_by_reason", "uptime_s", "tracked_ues", "preset", "history", "horizon", "n_ant", "n_rb", "n_beams", "background_dropped")
    class FallbacksByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    TRACKED_UES_FIELD_NUMBER: _ClassVar[int]
    PRESET_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    HORIZON_FIELD_NUMBER: _ClassVar[int]
    N_ANT_FIELD_NUMBER: _ClassVar[int]
    N_RB_FIELD_NUMBER: _ClassVar[int]
    N_BEAMS_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_DROPPED_FIELD_NUMBER: _ClassVar[int]
    versions: ModelVersions
    models: _containers.RepeatedCompositeFieldContainer[ModelStats]
    groups: _containers.RepeatedCompositeFieldContainer[GroupStats]
    latency: _containers.RepeatedCompositeFieldContainer[LatencySummary]
    predictions: int
    fallbacks: int
    fallbacks_by_reason: _containers.ScalarMap[str, int]
    uptime_s: float
    tracked_ues: int
    preset: str
    history: int
    horizon: int
    n_ant: int
    n_rb: int
    n_beams: int
    background_dropped: int
    def __init__(self, versions: _Optional[_Union[ModelVersions, _Mapping]] = ..., models: _Optional[_Iterable[_Union[ModelStats, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[GroupStats, _Mapping]]] = ..., latency: _Optional[_Iterable[_Union[LatencySummary, _Mapping]]] = ..., predictions: _Optional[int] = ..., fallbacks: _Optional[int] = ..., fallbacks_by_reason: _Optional[_Mapping[str, int]] = ..., uptime_s: _Optional[float] = ..., tracked_ues: _Optional[int] = ..., preset: _Optional[str] = ..., history: _Optional[int] = ..., horizon: _Optional[int] = ..., n_ant: _Optional[int] = ..., n_rb: _Optional[int] = ..., n_beams: _Optional[int] = ..., background_dropped: _Optional[int] = ...) -> None: ...

class ExportRecentCsiRequest(_message.Message):
    __slots__ = ("max_sequences", "sequence_length", "ue_group")
    MAX_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    UE_GROUP_FIELD_NUMBER: _ClassVar[int]
    max_sequences: int
    sequence_length: int
    ue_group: str
    def __init__(self, max_sequences: _Optional[int] = ..., sequence_length: _Optional[int] = ..., ue_group: _Optional[str] = ...) -> None: ...

class CsiSequence(_message.Message):
    __slots__ = ("ue_id", "ue_group", "first_slot", "channel")
    UE_ID_FIELD_NUMBER: _ClassVar[int]
    UE_GROUP_FIELD_NUMBER: _ClassVar[int]
    FIRST_SLOT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ue_id: str
    ue_group: str
    first_slot: int
    channel: _tensor_pb2.Tensor
    def __init__(self, ue_id: _Optional[str] = ..., ue_group: _Optional[str] = ..., first_slot: _Optional[int] = ..., channel: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...
