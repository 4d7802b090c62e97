"""``dapp.malloc.retain_freed_memory``: glibc keeps freed heap memory instead of trimming it."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import ctypes, sys
from dapp.malloc import retain_freed_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_long]
if sys.argv[1] == "retain":
    assert retain_freed_memory()
# 64 blocks of 96 KiB (below the mmap threshold: they come from the heap), freed in reverse
blocks = [libc.malloc(96 << 10) for _ in range(64)]
top = libc.sbrk(0)
for block in reversed(blocks):
    libc.free(block)
print(top - libc.sbrk(0))      # bytes the heap shrank by
"""


def _heap_shrink(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True, timeout=60)
    return int(out.stdout.strip())


def test_freed_memory_stays_in_the_heap() -> None:
    assert _heap_shrink("default") > 4 << 20      # glibc gave the 6 MiB back to the kernel
    assert _heap_shrink("retain") == 0            # kept for the next message
