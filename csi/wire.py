"""Wire packing: numpy arrays <-> little-endian bytes plus a shape.

Tensors cross gRPC as raw little-endian bytes (``<c8`` for complex64, ``<f4`` for float32) with an
explicit shape, never as repeated floats. Unpacking is zero-copy (a read-only view on the bytes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

COMPLEX64_LE = np.dtype("<c8")
FLOAT32_LE = np.dtype("<f4")


def pack(array: np.ndarray, dtype: np.dtype = COMPLEX64_LE) -> tuple[bytes, tuple[int, ...]]:
    """Array -> (little-endian bytes, shape). Copies only if dtype or memory order differ."""
    arr = np.ascontiguousarray(array, dtype=dtype)
    return arr.tobytes(), tuple(int(d) for d in arr.shape)


def unpack(data: bytes | memoryview, shape: Sequence[int],
           dtype: np.dtype = COMPLEX64_LE) -> np.ndarray:
    """(bytes, shape) -> read-only array view (zero-copy).

    Raises ``ValueError`` if the byte count does not match ``shape`` x itemsize or a dimension is
    negative; never reads past the buffer.
    """
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dimension in shape {dims}")
    expected = math.prod(dims) * dtype.itemsize          # exact; np.prod costs ~3 µs more
    if len(data) != expected:
        raise ValueError(
            f"payload has {len(data)} bytes, shape {dims} of {dtype} needs {expected}")
    return np.frombuffer(data, dtype=dtype).reshape(dims)
