"""Keep freed heap memory in a client process that sends large messages at a high rate.

A unary ``Predict`` carries a whole std history (192 KiB) and its answer 48 KiB. glibc gives the
top of the heap back to the kernel whenever more than ``M_TRIM_THRESHOLD`` of it is free, so once
its thresholds have adapted to these sizes, every call grows the heap again and pays page faults
for the new pages: measured with the Python client of ``kdran bench latency`` (2026-12-05, 2-core
VM), the unary round trip rose from 720 to 1010 µs (p50) after about 2000 calls and stayed there;
with the trim threshold and top pad below it stayed at 720 µs. The dApp's own handler time was
the same either way, so only the clients (``kdran bench latency``, ``kdran bench load``,
``kdran sim du``) call ``retain_freed_memory``.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1      # glibc <malloc.h>
M_TOP_PAD = -2
TRIM_THRESHOLD_BYTES = 128 << 20
TOP_PAD_BYTES = 16 << 20


def retain_freed_memory() -> bool:
    """Tell glibc malloc to keep up to 128 MiB of freed memory and to grow the heap 16 MiB at a
    time. Returns False (and changes nothing) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                and mallopt(M_TOP_PAD, TOP_PAD_BYTES))
