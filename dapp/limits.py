"""Message and upload size limits, chosen on purpose and shared by server and client.

The largest legitimate requests are a PredictBatch of 256 SRS deltas (std: 256 x 12 KiB = 3 MiB)
and a 4 MiB deploy chunk, so the server receives at most 8 MiB per message. The largest answers
are a PredictBatch of 256 predictions (std: 256 x 48 KiB = 12 MiB), so it sends at most 16 MiB.
gRPC refuses a larger message with RESOURCE_EXHAUSTED before any decoding; the deploy path checks
the chunk and model limits itself and answers RESOURCE_EXHAUSTED with a message.
"""

from __future__ import annotations

MAX_RECEIVE_BYTES = 8 << 20
MAX_SEND_BYTES = 16 << 20
MAX_CHUNK_BYTES = 4 << 20
MAX_MODEL_BYTES = 256 << 20
MAX_BATCH = 256


def channel_options(max_receive_bytes: int = MAX_SEND_BYTES,
                    max_send_bytes: int = MAX_RECEIVE_BYTES) -> list[tuple[str, int]]:
    """gRPC channel/server options for these limits. The defaults suit a client (it receives
    what the server sends); the server passes its own receive/send limits."""
    return [("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_send_message_length", max_send_bytes)]
