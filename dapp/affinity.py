"""CPU pinning of the dApp process (``kdran dapp serve --cpus``, ``kdran bench latency``).

Next to a DU the dApp should own its cores: on a 2-core VM (2026-12-05, a std-size student), an
Observe stream round trip fell from p50/p99 779/966 µs to 571/723 µs once the dApp and its client
stopped sharing cores (``kdran bench latency`` pins them apart, ``--no-pin`` measures shared).
On Kubernetes the static CPU manager policy gives a Guaranteed pod exclusive cores and this flag
is not needed; on bare metal it is how to keep the dApp on cores the DU does not use.

Linux only (``os.sched_setaffinity``). Every thread that exists when ``pin_process`` runs is
pinned, and threads started later (gRPC, ONNX Runtime, the background worker) inherit it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def can_pin() -> bool:
    """Whether this platform lets a process choose its CPUs (Linux)."""
    return hasattr(os, "sched_setaffinity") and Path("/proc/self/task").is_dir()


def parse_cpu_list(text: str) -> frozenset[int]:
    """``"0-2,5"`` -> ``{0, 1, 2, 5}``; ``ValueError`` with the reason for anything else
    (empty, malformed, reversed range, a CPU this process may not use, no pinning here)."""
    if not can_pin():
        raise ValueError("CPU pinning (--cpus) needs Linux")
    cpus: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        first, sep, last = part.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise ValueError(f"CPU list {text!r}: {part!r} is not N or N-M")
        low, high = int(first), int(last) if sep else int(first)
        if high < low:
            raise ValueError(f"CPU list {text!r}: range {part!r} runs backwards")
        cpus.update(range(low, high + 1))
    allowed = os.sched_getaffinity(0)
    if not cpus <= allowed:
        raise ValueError(f"CPU list {text!r}: CPUs {sorted(cpus - allowed)} are not available "
                         f"to this process (allowed: {sorted(allowed)})")
    return frozenset(cpus)


def pin_process(cpus: frozenset[int]) -> None:
    """Restrict every current thread of this process (and so the threads it starts) to
    ``cpus``."""
    for task in Path("/proc/self/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:           # a thread that ended meanwhile
            continue


@contextlib.contextmanager
def pinned(cpus: frozenset[int]) -> Iterator[None]:
    """This process pinned to ``cpus`` for the ``with`` block (nothing when empty), its
    threads' previous affinity restored after (``kdran bench latency``'s client side)."""
    if not cpus:
        yield
        return
    before = frozenset(os.sched_getaffinity(0))
    pin_process(cpus)
    try:
        yield
    finally:
        pin_process(before)
