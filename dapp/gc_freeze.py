"""Keep CPython's full garbage collections short in a latency-sensitive process.

A generation-2 collection walks every object the collector tracks. After start-up a std dApp
holds about 48 000 of them (modules, gRPC, protobuf descriptors, the model manager's state),
nearly all alive until the process ends, so each full collection, triggered by the allocations
of ordinary requests, stalls whichever request is running.
``gc.freeze`` moves every object alive at that moment into a permanent generation that
collections skip; later garbage is still collected as before.

Measured (2026-12-05, 2-core Xeon VM, std INT8 student, dApp on CPU 1 and a Python client on
CPU 0, CPU wake-up latency limit 0 µs, 2000 calls): unary ``Predict`` round trip p99 3149 and
3184 µs without, 1411 and 1491 µs with the dApp's start-up objects frozen; p50 unchanged
(1183-1225 vs 1164-1176 µs).
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect garbage, then exempt every object alive now from later collections. Returns how
    many objects are frozen in all."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
