"""Token bucket: the per-stream message rate limit of the data plane.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; a message
takes one. ``rate`` 0 disables the limit. Not thread-safe: one bucket belongs to one stream,
which one gRPC worker thread serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens/s (> 0), at most ``burst`` (>= 1) banked; starts full."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst, self.clock = rate, burst, clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self, n: int = 1) -> bool:
        """Take ``n`` tokens if there are that many (True), else take none (False)."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < n:
            return False
        self._tokens -= n
        return True
