"""Message and upload size limits, chosen on purpose and shared by server and client.

The largest legitimate requests are a PredictBatch of 256 SRS deltas (std: 256 x 12 KiB = 3 MiB)
and a 4 MiB deploy chunk, so the server receives at most 8 MiB per message. The largest answers
are a PredictBatch of 256 predictions (std: 256 x 48 KiB = 12 MiB), so it sends at most 16 MiB.
gRPC refuses a larger message with RESOURCE_EXHAUSTED before any decoding; the deploy path checks
the chunk and model limits itself and answers RESOURCE_EXHAUSTED with a message.

``ServiceLimits`` holds the limits on what one client may ask of the service (defaults below, all
configurable with ``kdran dapp serve`` flags / env):

- ``stream_rate`` / ``stream_burst``: observations per second on one ``Observe`` stream, as a token
  bucket (default 20 000/s, burst 2 000: 100 UEs at a 5 ms SRS period on one stream); over it
  the stream ends with RESOURCE_EXHAUSTED. 0 = no limit.
- ``unary_rate`` / ``unary_burst``: observations per second one client (gRPC peer, i.e. one
  connection) may send through ``Predict`` and ``PredictBatch`` together (a batch of n takes n
  tokens; same defaults); over it the call is refused with RESOURCE_EXHAUSTED. 0 = no limit.
- ``export_sequences`` / ``export_bytes``: an ``ExportRecentCsi`` stream ends after this many
  sequences (default 10 000) or before its payload would pass this many bytes (default 256 MiB).
- the tracked-UE limit lives in ``EngineConfig.max_ues`` (a new UE beyond it is refused).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_RECEIVE_BYTES = 8 << 20
MAX_SEND_BYTES = 16 << 20
MAX_CHUNK_BYTES = 4 << 20
MAX_MODEL_BYTES = 256 << 20
MAX_BATCH = 256
DEFAULT_STREAM_RATE = 20_000.0
DEFAULT_STREAM_BURST = 2_000
DEFAULT_EXPORT_SEQUENCES = 10_000
DEFAULT_EXPORT_BYTES = 256 << 20


@dataclass(frozen=True)
class ServiceLimits:
    """Per-client limits of the gRPC service (see the module docstring)."""

    stream_rate: float = DEFAULT_STREAM_RATE
    stream_burst: int = DEFAULT_STREAM_BURST
    export_sequences: int = DEFAULT_EXPORT_SEQUENCES
    export_bytes: int = DEFAULT_EXPORT_BYTES
    unary_rate: float = DEFAULT_STREAM_RATE
    unary_burst: int = DEFAULT_STREAM_BURST

    def __post_init__(self) -> None:
        if self.stream_rate < 0 or self.stream_burst < 1:
            raise ValueError("stream_rate must be >= 0 and stream_burst >= 1")
        if self.unary_rate < 0 or self.unary_burst < 1:
            raise ValueError("unary_rate must be >= 0 and unary_burst >= 1")
        if self.export_sequences < 1 or self.export_bytes < 1:
            raise ValueError("export limits must be positive")


def channel_options(max_receive_bytes: int = MAX_SEND_BYTES,
                    max_send_bytes: int = MAX_RECEIVE_BYTES) -> list[tuple[str, int]]:
    """gRPC channel/server options for these limits. The defaults suit a client (it receives
    what the server sends); the server passes its own receive/send limits."""
    return [("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_send_message_length", max_send_bytes)]
