"""The emulated DU: N UEs whose SRS channels evolve per a timeline, streamed to the dApp.

Every SRS occasion (``preset.srs_period_s``, 0.5 ms at std) the DU sends each UE's noisy SRS
estimate complex64 ``[antenna, rb]`` to the dApp over ONE real gRPC ``Observe`` stream (all UEs
of an occasion are written, then their answers read, so the stream is pipelined) and counts
what comes back. Pacing is real time (occasion ``k`` is sent at ``t0 + k * period``; when the DU
falls more than ``max_lag_s`` behind, it skips to now) or as fast as possible (emulated time only).

Channels. Each UE follows its phase's setting (scenario, speed, carrier; ``sim.timeline``). Clean
channels are generated in *blocks* of ``block_occasions`` SRS occasions for all UEs at once, by
a :class:`ChannelSource`: :class:`SionnaChannels` (TR 38.901 UMa/UMi/CDL through
``distill.data.sionna_source``, the dataset generator's own code) or :class:`SyntheticChannels`
(``csi.synthetic`` plane-wave multipath, fast, for tests). Neither carries a UE's channel state
from one call to the next, so each block is a fresh drop of the UE: within a block the channel
evolves continuously (Doppler at the UE's speed); at a block boundary, at a phase change, after
skipped occasions and after a reconnect the DU restarts the UE at the dApp with a ``history``
message (the newest ``preset.history`` estimates; each block carries ``history - 1`` occasions
of pre-roll for this), so every observation gets a ready prediction. The estimate is the clean
channel (unit power per UE and block) plus complex Gaussian noise at ``snr_db``
(``csi.dataset.ChannelSet.observed``).

Reconnect: a failed ``Observe`` (dApp restarted, unreachable, or the stream refused) counts as a
failed RPC; the DU waits (exponential backoff up to ``max_backoff_s``), opens a new stream and
restarts every UE, because a restarted dApp has lost their histories.

UE groups at the dApp are the cells (``str(NrCgi)``), so ``GetStatus`` reports NMSE per cell.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import grpc
import numpy as np

from csi.dataset import ChannelSet
from csi.layout import normalise_power
from csi.presets import Preset
from csi.synthetic import multipath_channels
from dapp import convert
from dapp.client import DappClient
from dapp.messages import Answer, Observation
from kdran.v1 import predictor_pb2 as pb
from sim.timeline import Timeline, UeSetting
from xapp.e2 import NrCgi

log = logging.getLogger(__name__)

DEFAULT_PLMN = "00101"

# csi.synthetic stand-ins per scenario: (plane waves, rms delay spread s). UMa/UMi: the median
# NLoS delay spread of TR 38.901 Table 7.5-6 at 3.5 GHz (lgDS = -6.28 - 0.204 log10(fc) and
# -0.24 log10(1 + fc) - 6.83); CDL and Rician: the middle of the dataset recipes' ranges. The
# synthetic source has no LoS component or cluster structure: it is a fast test stand-in.
_SYNTHETIC_PROFILE: dict[str, tuple[int, float]] = {
    "UMa": (20, 406e-9), "UMi": (20, 103e-9),
    "CDL-A": (23, 200e-9), "CDL-B": (23, 200e-9), "CDL-C": (24, 200e-9),
    "CDL-D": (13, 200e-9), "CDL-E": (14, 200e-9), "Rician": (4, 45e-9),
}


class ChannelSource(Protocol):
    """Generates clean channels for a block of SRS occasions."""

    name: str

    def block(self, settings: Sequence[UeSetting], steps: int, seed: int) -> np.ndarray:
        """Clean channels complex64 ``[len(settings), steps, antenna, rb]``, unit power per UE,
        one SRS period apart, UE ``i`` per ``settings[i]``; deterministic in ``seed``."""
        ...


def _carrier(preset: Preset, setting: UeSetting) -> float:
    return preset.carrier_hz if setting.carrier_hz is None else setting.carrier_hz


def _by_key(settings: Sequence[UeSetting], preset: Preset
            ) -> dict[tuple[str, float], list[int]]:
    """UE indices grouped by (scenario, carrier Hz), in first-seen order."""
    groups: dict[tuple[str, float], list[int]] = {}
    for i, s in enumerate(settings):
        groups.setdefault((s.scenario, _carrier(preset, s)), []).append(i)
    return groups


class SyntheticChannels:
    """``csi.synthetic.multipath_channels`` with a per-scenario path count and delay spread."""

    name = "synthetic"

    def __init__(self, preset: Preset) -> None:
        self.preset = preset

    def block(self, settings: Sequence[UeSetting], steps: int, seed: int) -> np.ndarray:
        out = np.empty((len(settings), steps, self.preset.n_ant, self.preset.n_rb), np.complex64)
        for k, ((scenario, carrier), index) in enumerate(_by_key(settings, self.preset).items()):
            n_paths, spread = _SYNTHETIC_PROFILE[scenario]
            speeds = np.array([settings[i].speed_kmh for i in index])
            out[index] = multipath_channels(replace(self.preset, carrier_hz=carrier), len(index),
                                            speeds, n_paths=n_paths, delay_spread_s=spread,
                                            steps=steps, seed=seed * 1000 + k)
        return out


class SionnaChannels:
    """TR 38.901 channels from ``distill.data.sionna_source.SionnaSource`` (imports torch and
    Sionna on construction). Per-UE draws (heading, delay spread, yaws) come from the dataset
    code's ``draw_sequences`` with the UE's speed substituted."""

    name = "sionna"

    def __init__(self, preset: Preset) -> None:
        from distill.data import sionna_source  # heavy: torch + Sionna

        self.preset = preset
        self._module = sionna_source
        self._sources: dict[float, sionna_source.SionnaSource] = {}

    def block(self, settings: Sequence[UeSetting], steps: int, seed: int) -> np.ndarray:
        from distill.data.draws import child_seed, draw_sequences
        from distill.data.recipes import (
            FACTORY_DELAY_SPREAD_S,
            RICIAN_SCENARIO,
            Recipe,
        )

        out = np.empty((len(settings), steps, self.preset.n_ant, self.preset.n_rb), np.complex64)
        for (scenario, carrier), index in _by_key(settings, self.preset).items():
            recipe = Recipe(split="live", scenarios=(scenario,), speed_kmh=(0.0, 0.0),
                            snr_db=(0.0, 0.0), carrier_hz=carrier, steps=steps)
            if scenario == RICIAN_SCENARIO:
                recipe = replace(recipe, delay_spread_s=FACTORY_DELAY_SPREAD_S)
            draws = draw_sequences(recipe, len(index), child_seed(seed, scenario, int(carrier)))
            draws = replace(draws, speed_kmh=np.array([settings[i].speed_kmh for i in index],
                                                      np.float32))
            source = self._sources.get(carrier)
            if source is None:
                source = self._sources[carrier] = self._module.SionnaSource(self.preset, carrier)
            with self._module.sionna_seed(child_seed(seed, "sionna", scenario, int(carrier))):
                h = source.channels(scenario, draws, steps, recipe.k_factor_db)
            out[index] = normalise_power(h)
        return out


def channel_source(kind: str, preset: Preset) -> ChannelSource:
    """``"sionna"`` or ``"synthetic"``."""
    if kind == "synthetic":
        return SyntheticChannels(preset)
    if kind == "sionna":
        return SionnaChannels(preset)
    raise ValueError(f"unknown channel source {kind!r}; use 'sionna' or 'synthetic'")


@dataclass(frozen=True)
class DuConfig:
    """DU settings. Times in seconds of emulated time unless named ``wall``."""

    n_ues: int = 16
    n_cells: int = 1
    snr_db: float = 18.0
    block_occasions: int = 200
    realtime: bool = True
    duration_s: float | None = None
    seed: int = 0
    name: str = "du1"
    plmn: str = DEFAULT_PLMN
    max_lag_s: float = 0.5
    max_backoff_s: float = 2.0

    def __post_init__(self) -> None:
        problems = []
        if self.n_ues < 1:
            problems.append(f"n_ues must be >= 1, got {self.n_ues}")
        if not 1 <= self.n_cells <= self.n_ues:
            problems.append(f"n_cells must be in 1..n_ues, got {self.n_cells}")
        if self.block_occasions < 1:
            problems.append(f"block_occasions must be >= 1, got {self.block_occasions}")
        if self.duration_s is not None and self.duration_s <= 0:
            problems.append(f"duration_s must be positive, got {self.duration_s}")
        if not math.isfinite(self.snr_db):
            problems.append(f"snr_db must be finite, got {self.snr_db}")
        if problems:
            raise ValueError("invalid DU config: " + "; ".join(problems))


@dataclass
class DuCounters:
    """What the DU did so far. ``sent`` observations; ``predictions`` answers received (``ready``
    of them with a future); ``fallbacks`` answers from the dApp's AR fallback; ``failed_rpcs``
    failed stream opens/exchanges; ``skipped`` occasions not sent (lag, outage)."""

    occasions: int = 0
    sent: int = 0
    predictions: int = 0
    ready: int = 0
    fallbacks: int = 0
    failed_rpcs: int = 0
    reconnects: int = 0
    restarts: int = 0
    skipped: int = 0
    blocks: int = 0


@dataclass(frozen=True)
class DuStatus:
    """A snapshot for status lines: emulated time (s), phase, counters, wall time running (s)."""

    t_s: float
    phase_index: int
    phase_label: str
    n_ues: int
    counters: DuCounters
    wall_s: float
    connected: bool


class _PipelinedStream:
    """One ``Observe`` call: write all observations of an occasion, then read their answers."""

    def __init__(self, client: DappClient) -> None:
        self._requests: queue.SimpleQueue[pb.Observation | None] = queue.SimpleQueue()
        self._call = client.predictor.Observe(iter(self._requests.get, None))
        self._answers: Iterator[pb.Prediction] = iter(self._call)

    def exchange(self, observations: Sequence[Observation]) -> list[Answer]:
        """Send ``observations``, return their answers in order (``grpc.RpcError`` on error)."""
        for obs in observations:
            self._requests.put(convert.observation_to_proto(obs))
        try:
            return [convert.answer_from_proto(next(self._answers)) for _ in observations]
        except StopIteration:
            raise _StreamEnded() from None

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()


class _StreamEnded(grpc.RpcError):
    """The server half-closed the stream without an error status."""


@dataclass
class _Block:
    """Noisy estimates of all UEs ``[n_ues, preroll + block, antenna, rb]``, read position."""

    observed: np.ndarray
    pos: int


@dataclass
class _State:
    phase_index: int = -1
    settings: list[UeSetting] = field(default_factory=list)
    block: _Block | None = None
    restart: bool = True


class Du:
    """The emulated DU (module docstring). ``run`` blocks; ``start``/``stop`` use a thread."""

    def __init__(self, target: str, preset: Preset, timeline: Timeline, channels: ChannelSource,
                 config: DuConfig | None = None) -> None:
        self.target = target
        self.preset = preset
        self.timeline = timeline
        self.channels = channels
        self.config = config or DuConfig()
        cfg = self.config
        self.cells = tuple(NrCgi(cfg.plmn, k + 1) for k in range(cfg.n_cells))
        self.ue_ids = tuple(f"{cfg.name}/ue-{i}" for i in range(cfg.n_ues))
        self.ue_cells = tuple(self.cells[i % cfg.n_cells] for i in range(cfg.n_ues))
        self._groups = tuple(str(c) for c in self.ue_cells)
        self._counters = DuCounters()
        self._lock = threading.Lock()
        self._state = _State()
        self._occasion = 0
        self._connected = False
        self._wall0 = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ observability
    @property
    def end_s(self) -> float | None:
        """Emulated time (s) the run stops at: ``duration_s`` or the timeline's end."""
        ends = [x for x in (self.config.duration_s, self.timeline.end_s) if x is not None]
        return min(ends) if ends else None

    def ues_per_cell(self) -> dict[NrCgi, int]:
        """Number of UEs each cell serves."""
        return {c: self.ue_cells.count(c) for c in self.cells}

    def status(self) -> DuStatus:
        """A consistent snapshot of time, phase and counters."""
        with self._lock:
            index = max(self._state.phase_index, 0)
            return DuStatus(self._time_s(), index,
                            self.timeline.phases[index].label, self.config.n_ues,
                            replace(self._counters), time.monotonic() - self._wall0,
                            self._connected)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Du:
        """Run in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("DU already started")
        self._thread = threading.Thread(target=self.run, name="du", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the run loop to stop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for a started run to finish; True if it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def run(self, until_s: float | None = None) -> DuCounters:
        """Stream occasions until emulated time ``until_s`` (None: the end time), the end time or
        ``stop``; returns the counters. Calling it again resumes where it stopped (the UEs are
        restarted at the dApp on the new stream)."""
        ends = [x for x in (until_s, self.end_s) if x is not None]
        stop_at = min(ends) if ends else math.inf
        self._wall0 = time.monotonic() - self._time_s()
        stream: _PipelinedStream | None = None
        backoff = 0.05
        with DappClient(self.target) as client:
            while not self._stop.is_set() and self._time_s() < stop_at:
                self._pace()
                if stream is None:
                    stream = self._connect(client)
                    if stream is None:
                        self._stop.wait(backoff)
                        backoff = min(2 * backoff, self.config.max_backoff_s)
                        continue
                    backoff = 0.05
                if not self._send_occasion(stream):
                    stream.close()
                    stream = None
                    self._set_connected(False)
            if stream is not None:
                stream.close()
                self._set_connected(False)
        return self.status().counters

    # ------------------------------------------------------------------ internals
    def _time_s(self) -> float:
        return self._occasion * self.preset.srs_period_s

    def _set_connected(self, value: bool) -> None:
        with self._lock:
            self._connected = value

    def _connect(self, client: DappClient) -> _PipelinedStream | None:
        try:
            stream = _PipelinedStream(client)
        except grpc.RpcError as exc:
            self._count_failure(exc)
            return None
        with self._lock:
            self._counters.reconnects += 1
            self._state.restart = True
            self._connected = True
        return stream

    def _count_failure(self, exc: grpc.RpcError) -> None:
        if isinstance(exc, grpc.Call):
            log.warning("dApp %s: Observe failed: %s %s", self.target, exc.code(), exc.details())
        else:
            log.warning("dApp %s: Observe stream ended by the server", self.target)
        with self._lock:
            self._counters.failed_rpcs += 1

    def _pace(self) -> None:
        """Real time: sleep until this occasion is due, or skip ahead when too far behind."""
        if not self.config.realtime:
            return
        period = self.preset.srs_period_s
        behind = (time.monotonic() - self._wall0) - self._occasion * period
        if behind > self.config.max_lag_s:
            self._skip(int(behind / period))
        elif behind < 0:
            self._stop.wait(-behind)

    def _skip(self, n: int) -> None:
        with self._lock:
            self._occasion += n
            self._counters.skipped += n
            self._state.restart = True
            if self._state.block is not None:
                self._state.block.pos += n

    def _prepare(self) -> _Block:
        """The block holding the current occasion (new phase or exhausted block -> new one)."""
        state = self._state
        index = self.timeline.phase_index(self._time_s())
        if index != state.phase_index:
            state.phase_index = index
            state.settings = self.timeline.settings(index, self.config.n_ues, self.config.seed)
            state.block = None
            log.info("phase %d (%s) at occasion %d", index, self.timeline.phases[index].label,
                     self._occasion)
        if state.block is None or state.block.pos >= state.block.observed.shape[1]:
            state.block = self._new_block()
            state.restart = True
        return state.block

    def _new_block(self) -> _Block:
        preroll = self.preset.history - 1
        steps = preroll + self.config.block_occasions
        seed = self.config.seed * 1_000_003 + self._occasion
        clean = self.channels.block(self._state.settings, steps, seed)
        n = self.config.n_ues
        observed = ChannelSet(clean, np.array([s.scenario for s in self._state.settings]),
                              np.array([s.speed_kmh for s in self._state.settings], np.float32),
                              np.array([_carrier(self.preset, s) for s in self._state.settings]),
                              np.full(n, self.config.snr_db, np.float32),
                              noise_seed=seed + 1).observed()
        with self._lock:
            self._counters.blocks += 1
        return _Block(observed, preroll)

    def _observations(self, block: _Block, restart: bool) -> list[Observation]:
        # slots start at history - 1 so that the first history message fits before slot 0
        history = self.preset.history
        slot, pos = self._occasion + history - 1, block.pos
        if restart:
            return [Observation(ue, slot, history=block.observed[i, pos - history + 1:pos + 1],
                                group=g)
                    for i, (ue, g) in enumerate(zip(self.ue_ids, self._groups, strict=True))]
        return [Observation(ue, slot, srs=block.observed[i, pos], group=g)
                for i, (ue, g) in enumerate(zip(self.ue_ids, self._groups, strict=True))]

    def _send_occasion(self, stream: _PipelinedStream) -> bool:
        """Send every UE's estimate of the current occasion; False if the stream failed."""
        block = self._prepare()
        restart = self._state.restart
        observations = self._observations(block, restart)
        try:
            answers = stream.exchange(observations)
        except grpc.RpcError as exc:
            self._count_failure(exc)
            self._advance(block, 0, 0, 0)
            return False
        ready = sum(a.ready for a in answers)
        fallbacks = sum(a.fallback for a in answers)
        with self._lock:
            self._counters.sent += len(observations)
            self._counters.restarts += len(observations) if restart else 0
            self._state.restart = False
        self._advance(block, len(answers), ready, fallbacks)
        return True

    def _advance(self, block: _Block, answers: int, ready: int, fallbacks: int) -> None:
        with self._lock:
            self._counters.predictions += answers
            self._counters.ready += ready
            self._counters.fallbacks += fallbacks
            self._counters.occasions += 1
            if answers == 0:
                self._counters.skipped += 1
                self._state.restart = True
            block.pos += 1
            self._occasion += 1
