"""Per-UE history of SRS channel estimates: bounded ring buffers with idle-UE eviction.

Each tracked UE owns a ring of ``capacity`` estimates complex64 ``[antenna, rb]`` with their slot
numbers (consecutive SRS occasions). Memory is bounded by ``(max_ues x capacity + archive_steps)
x antenna x rb x 8`` bytes (std, 512 UEs x 40 steps: 250 MB, plus 2 MB for the default archive of
4 x 40 steps); a UE idle for ``idle_timeout_s`` is evicted on the next update. When ``max_ues``
UEs are tracked, a new UE is refused (``TooLarge``, gRPC RESOURCE_EXHAUSTED) and the tracked
ones keep being served: evicting a live UE instead would let one misbehaving client (fresh UE ids
in a loop) knock every other UE out of service.

When a tracked UE is restarted (a new ``history`` observation: a new drop, a handover back), the
steps its ring held are kept as a finished sequence in a bounded archive (``archive_steps`` steps
in all, oldest sequences dropped first) so that ``snapshot`` — and so ``ExportRecentCsi``, the
re-distillation job's data — still has them: a restart does not make the recent radio conditions
disappear from the training data.

Thread safety: the UE table has one lock (lookup, insert, evict, archive); each UE has its own lock
for its ring, so streams of different UEs never wait on each other's copies.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from csi.layout import CHANNEL_DTYPE
from dapp.errors import InvalidInput, PreconditionFailed, TooLarge
from dapp.scoring import Pending

DEFAULT_GROUP = "default"


@dataclass
class UeHistory:
    """The ring of one UE. ``slot`` is the slot of the newest estimate (valid when ``size > 0``)."""

    ue_id: str
    group: str
    ring: np.ndarray                     # complex64 [capacity, antenna, rb]
    size: int = 0                        # valid steps (<= capacity)
    head: int = 0                        # index the next estimate goes to
    slot: int = -1
    last_seen: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: list[Pending] = field(default_factory=list)   # predictions awaiting their SRS

    @property
    def capacity(self) -> int:
        """Steps the ring holds."""
        return self.ring.shape[0]

    def reset(self, steps: np.ndarray, slot: int) -> None:
        """Replace the content with ``steps`` ``[time, a, r]`` (newest last) ending at ``slot``."""
        keep = steps[-self.capacity:]
        self.ring[:len(keep)] = keep
        self.size = len(keep)
        self.head = len(keep) % self.capacity
        self.slot = slot
        self.pending.clear()

    def append(self, srs: np.ndarray, slot: int) -> None:
        """Add the estimate ``[a, r]`` of ``slot``: ``slot`` must follow ``self.slot``; a gap
        (missed occasions) restarts the history at this estimate."""
        if slot <= self.slot:
            raise InvalidInput(f"UE {self.ue_id!r}: slot {slot} is not after its last slot "
                               f"{self.slot}")
        if slot != self.slot + 1:
            self.reset(srs[None], slot)
            return
        self.ring[self.head] = srs
        self.head = (self.head + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.slot = slot

    def window(self, steps: int, out: np.ndarray | None = None) -> np.ndarray:
        """Copy of the newest ``steps`` estimates ``[steps, a, r]``, oldest first
        (``steps <= size``), written into ``out`` (e.g. a row of the model batch) or a new
        array; returns it. One slice copy, two where the window wraps around the ring."""
        if out is None:
            out = np.empty((steps, *self.ring.shape[1:]), self.ring.dtype)
        start = self.head - steps
        if start >= 0:
            out[:] = self.ring[start:self.head]
        else:                                   # oldest -start steps at the end of the ring
            out[:-start] = self.ring[start:]
            out[-start:] = self.ring[:self.head]
        return out


class HistoryStore:
    """All tracked UEs. ``clock`` (seconds, monotonic) is injectable for tests."""

    def __init__(self, n_ant: int, n_rb: int, capacity: int, max_ues: int = 512,
                 idle_timeout_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 archive_steps: int | None = None) -> None:
        if capacity < 1 or max_ues < 1:
            raise ValueError("history capacity and max_ues must be positive")
        self.n_ant, self.n_rb, self.capacity = n_ant, n_rb, capacity
        self.max_ues, self.idle_timeout_s, self.clock = max_ues, idle_timeout_s, clock
        self.archive_steps = 4 * capacity if archive_steps is None else archive_steps
        self._ues: OrderedDict[str, UeHistory] = OrderedDict()     # least recently seen first
        self._archive: deque[tuple[str, str, int, np.ndarray]] = deque()   # oldest first
        self._archived_steps = 0
        self._lock = threading.Lock()
        self.evicted = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self._ues)

    def start(self, ue_id: str, group: str, steps: np.ndarray, slot: int) -> UeHistory:
        """(Re)start ``ue_id`` with ``steps`` ``[time, a, r]`` whose newest step is ``slot``;
        ``TooLarge`` for a new UE when ``max_ues`` are tracked."""
        if steps.ndim != 3 or steps.shape[0] < 1:
            raise InvalidInput(f"history must be [time>=1, antenna, rb], got {steps.shape}")
        with self._lock:
            now = self.clock()
            self._evict_idle(now)
            ue = self._ues.pop(ue_id, None)
            if ue is None:
                if len(self._ues) >= self.max_ues:
                    self.refused += 1
                    raise TooLarge(f"cannot track UE {ue_id!r:.40}: {self.max_ues} UEs are "
                                   f"tracked already (UEs idle for {self.idle_timeout_s:g} s "
                                   "are evicted)")
                ring = np.zeros((self.capacity, self.n_ant, self.n_rb), CHANNEL_DTYPE)
                ue = UeHistory(ue_id, group, ring)
            ue.group, ue.last_seen = group, now
            self._ues[ue_id] = ue
        with ue.lock:
            finished = (ue.ue_id, ue.group, ue.slot - ue.size + 1, ue.window(ue.size)
                        ) if ue.size else None
            ue.reset(steps, slot)
        if finished is not None:
            self._keep(finished)
        return ue

    def _keep(self, sequence: tuple[str, str, int, np.ndarray]) -> None:
        """Archive a restarted UE's finished sequence, dropping the oldest beyond the budget."""
        with self._lock:
            self._archive.append(sequence)
            self._archived_steps += len(sequence[3])
            while self._archived_steps > self.archive_steps:
                self._archived_steps -= len(self._archive.popleft()[3])

    def get(self, ue_id: str) -> UeHistory:
        """The tracked UE ``ue_id`` (marked as seen now); ``PreconditionFailed`` if unknown."""
        with self._lock:
            now = self.clock()
            self._evict_idle(now)
            ue = self._ues.get(ue_id)
            if ue is None:
                raise PreconditionFailed(
                    f"unknown UE {ue_id!r}: start it with a `history` observation first "
                    f"(UEs idle for {self.idle_timeout_s:g} s are evicted)")
            ue.last_seen = now
            self._ues.move_to_end(ue_id)
        return ue

    def snapshot(self, group: str = "") -> Iterator[tuple[str, str, int, np.ndarray]]:
        """``(ue_id, group, first_slot, [time, a, r] copy)`` per UE, most recently seen first,
        then the archived sequences of restarted UEs, newest first."""
        with self._lock:
            ues = list(reversed(self._ues.values()))
            archived = list(reversed(self._archive))
        for ue in ues:
            if group and ue.group != group:
                continue
            with ue.lock:
                size, slot = ue.size, ue.slot
                steps = ue.window(size) if size else None
            if steps is not None:
                yield ue.ue_id, ue.group, slot - size + 1, steps
        for ue_id, ue_group, first_slot, steps in archived:
            if not group or ue_group == group:
                yield ue_id, ue_group, first_slot, steps

    def _evict_idle(self, now: float) -> None:
        while self._ues:
            oldest = next(iter(self._ues.values()))
            if now - oldest.last_seen <= self.idle_timeout_s:
                break
            self._ues.popitem(last=False)
            self.evicted += 1
