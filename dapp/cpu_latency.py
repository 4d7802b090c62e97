"""A CPU wake-up latency limit held while the dApp serves (``--cpu-wakeup-latency-us``).

A request that reaches an idle CPU waits for it to wake. On a VM whose idle CPUs halt (cpuidle
``haltpoll`` with halt polling off), every gRPC round trip pays that wake-up several times.
Linux's PM QoS interface takes a limit: a process writes the largest wake-up latency it accepts
(µs, a native int32) to ``/dev/cpu_dma_latency`` and the limit holds, for every CPU, as long as
the process keeps the file open. cpuidle then only enters idle states whose exit latency is
within it (0: idle CPUs poll instead of halting). RAN hosts run this way (real-time DU software
asks for the same limit); the price is power on idle cores.

Measured on a 2-core Xeon VM (2026-12-05, cpuidle ``haltpoll``, ``guest_halt_poll_ns=0``): a
1 KiB gRPC echo from a Python client on CPU 0 to a Python server on CPU 1, p50/p99 445-592 /
1176-1293 µs without a limit and 233-234 / 405-435 µs with 0 µs; a Unix-socket ping-pong
70-72 / 249-284 µs and 14 / 37-40 µs.

The device is root-only (mode 0600). In a container it must be mounted and writable (the Helm
chart's ``dapp.cpuWakeupLatencyUs``); where it is not, ``hold_cpu_latency`` logs why and the dApp
serves without the limit.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from types import TracebackType

DEVICE = Path("/dev/cpu_dma_latency")
MAX_LIMIT_US = 2**31 - 1

log = logging.getLogger(__name__)


class CpuLatencyLimit:
    """A PM QoS CPU wake-up latency limit of ``limit_us`` µs, in force until ``release`` (or
    the process exits). ``OSError`` when ``device`` cannot be opened for writing."""

    def __init__(self, limit_us: int, device: Path = DEVICE) -> None:
        if not 0 <= limit_us <= MAX_LIMIT_US:
            raise ValueError(f"CPU wake-up latency limit {limit_us} µs outside "
                             f"0..{MAX_LIMIT_US}")
        self.limit_us = limit_us
        self.device = device
        self._fd: int | None = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(self._fd, struct.pack("=i", limit_us))
        except OSError:
            self.release()
            raise

    @property
    def held(self) -> bool:
        """Whether the limit is still in force (not released)."""
        return self._fd is not None

    def release(self) -> None:
        """Withdraw the limit (closing the file is how PM QoS drops it); idempotent."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CpuLatencyLimit:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()


def hold_cpu_latency(limit_us: int | None, device: Path = DEVICE) -> CpuLatencyLimit | None:
    """The limit, or None when ``limit_us`` is None or negative (no limit asked for) or the
    device cannot be written (logged as a warning with the reason: serving goes on)."""
    if limit_us is None or limit_us < 0:
        return None
    try:
        limit = CpuLatencyLimit(limit_us, device)
    except OSError as err:
        log.warning("no CPU wake-up latency limit: cannot write %s (%s); the dApp needs the "
                    "device and the right to write it (root, or a privileged container)",
                    device, err.strerror or err)
        return None
    log.info("CPU wake-up latency limited to %d µs (%s held open)", limit_us, device)
    return limit
