"""Token buckets: the message rate limits of the data plane.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; an observation
takes one. ``TokenBucket`` is not thread-safe: one bucket belongs to one ``Observe`` stream, which
one gRPC worker thread serves. ``ClientBuckets`` is the thread-safe, bounded map of buckets per
client (gRPC peer) that the unary ``Predict``/``PredictBatch`` calls share.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
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


class ClientBuckets:
    """One ``TokenBucket(rate, burst)`` per client key, for at most ``max_clients`` clients (the
    least recently seen is forgotten first, so a churn of peers cannot grow memory). Thread-safe.
    """

    def __init__(self, rate: float, burst: int, max_clients: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients}")
        TokenBucket(rate, burst, clock)                     # validate once, here
        self.rate, self.burst, self.max_clients, self.clock = rate, burst, max_clients, clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, n: int = 1) -> bool:
        """Take ``n`` tokens from ``client``'s bucket (True), or none if it has fewer (False)."""
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is not None:
                self._buckets.move_to_end(client)
            else:
                bucket = self._buckets[client] = TokenBucket(self.rate, self.burst, self.clock)
                while len(self._buckets) > self.max_clients:
                    self._buckets.popitem(last=False)
            return bucket.take(n)

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)
