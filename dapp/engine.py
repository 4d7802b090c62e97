"""The dApp core, free of gRPC: per-UE history, model slots, fallback, shadow, online scoring.

``Engine.observe`` takes the observations of one message (a stream message or a PredictBatch),
updates each UE's ring buffer, scores the UE's pending predictions against the new SRS, runs the
active model once on every UE that has a full window, and answers. The shadow model gets the same
windows on a background thread; its predictions are scored like the active ones but never
returned. Scoring itself also runs on that thread (one job per message, vectorised over its
UEs), so neither delays an answer; both jobs are queued only once the answers exist
(``observe``), or once the gRPC reply is sent (``observe_deferred``), so the thread does not
compete for the GIL while an answer is computed. The queue is bounded in jobs and in bytes of the
arrays they hold (a shadow job keeps its input batch), and a job that does not fit is dropped
and counted (the online NMSE is then a sample). Each UE's window is copied once, from its ring
straight into the model batch.

Model slots (active, shadow) live in one immutable ``ModelSlots`` value replaced atomically, and
each request reads it once: no request ever sees a half-swapped pair.

Fallback to ``FallbackPredictor`` (AR/Wiener) when there is no active model, the model raises,
or ``elapsed + expected model time`` would pass the deadline (``deadline_us`` of the config and
the call's own gRPC deadline, whichever is earlier; expected time = 90th percentile of the last
``RUN_TIME_WINDOW`` runs of that model at that batch size).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from csi.layout import CHANNEL_DTYPE
from csi.presets import Preset
from dapp.artifact import TaskSpec
from dapp.errors import InvalidInput
from dapp.fallback import FallbackPredictor
from dapp.history import DEFAULT_GROUP, HistoryStore, UeHistory
from dapp.messages import Answer, Observation
from dapp.metrics import FALLBACK_REASONS, DappMetrics, StateSnapshot
from dapp.runner import OnnxRunner
from dapp.scoring import FALLBACK_TRACK, Arrival, NmseSummary, Pending, ScoreBook

log = logging.getLogger(__name__)

RUN_TIME_WINDOW = 32
MAX_UE_ID_BYTES = 128


@dataclass(frozen=True)
class EngineConfig:
    """Runtime settings. ``deadline_us`` 0 = only the caller's gRPC deadline applies;
    ``history_capacity`` 0 = ``2 x (history + horizon)`` steps per UE."""

    top_k: int = 3
    deadline_us: float = 0.0
    history_capacity: int = 0
    max_ues: int = 512
    idle_timeout_s: float = 60.0
    score_window: int = 2000
    ar_order: int = 4
    background_queue: int = 1024
    background_queue_mb: float = 32.0


@dataclass(frozen=True)
class ModelSlots:
    """The models in service. Replaced as a whole, never mutated."""

    active: OnnxRunner | None = None
    shadow: OnnxRunner | None = None

    def versions(self) -> dict[str, str]:
        """``{role: version}`` of the loaded models."""
        return {role: r.version for role, r in (("active", self.active), ("shadow", self.shadow))
                if r is not None}


@dataclass(frozen=True)
class TrackStatus:
    """Online accuracy of one model version (or the fallback) and its current role."""

    version: str
    role: str
    nmse: NmseSummary


@dataclass(frozen=True)
class GroupStatus:
    """Online accuracy of what one UE group was served."""

    group: str
    nmse: NmseSummary
    fallbacks: int


@dataclass(frozen=True)
class EngineStatus:
    """Everything GetStatus reports except latency (kept by ``DappMetrics``)."""

    versions: dict[str, str]
    tracks: list[TrackStatus]
    groups: list[GroupStatus]
    predictions: int
    fallbacks: dict[str, int]
    uptime_s: float
    tracked_ues: int
    background_dropped: int


@dataclass(frozen=True)
class _Inference:
    future: np.ndarray        # complex64 [n, horizon, a, r]
    scores: np.ndarray        # float32 [n, n_beams]
    version: str
    reason: str | None


class Engine:
    """Serves one task (``preset``); thread-safe, called from the gRPC worker threads."""

    def __init__(self, preset: Preset, config: EngineConfig | None = None,
                 metrics: DappMetrics | None = None) -> None:
        self.preset = preset
        self.task = TaskSpec.from_preset(preset)
        self.config = config or EngineConfig()
        self.metrics = metrics or DappMetrics()
        capacity = self.config.history_capacity or 2 * preset.seq_len
        if capacity < preset.history:
            raise ValueError(f"history capacity {capacity} < model history {preset.history}")
        self.history = HistoryStore(preset.n_ant, preset.n_rb, capacity, self.config.max_ues,
                                    self.config.idle_timeout_s)
        self.scores = ScoreBook(preset.horizon, self.config.score_window)
        self.fallback = FallbackPredictor(preset, self.config.ar_order)
        self._slots = ModelSlots()
        self._swap_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._served = 0
        self._fallbacks = dict.fromkeys(FALLBACK_REASONS, 0)
        self._run_times: dict[tuple[str, int], deque[float]] = {}
        self._times_lock = threading.Lock()
        self._started = time.monotonic()
        self._background = _BackgroundWorker(self.config.background_queue,
                                             int(self.config.background_queue_mb * 2**20))
        self._deferred = threading.Condition()   # guards _outstanding
        self._outstanding = 0                    # observe_deferred work not yet queued
        self.metrics.watch_state(self.state_snapshot)

    # -- model slots ----------------------------------------------------------------------
    @property
    def slots(self) -> ModelSlots:
        """The models in service now."""
        return self._slots

    def set_models(self, **roles: OnnxRunner | None) -> ModelSlots:
        """Atomically replace the ``active`` and/or ``shadow`` runner; returns the new slots.

        Each new model is listed in ``status`` (zero predictions) before it is in a slot, so a
        caller that sees the role change also sees the model's statistics."""
        for runner in roles.values():
            if runner is not None:
                self.task.check(runner.metadata)
                self.scores.add_track(runner.version)
        with self._swap_lock:
            self._slots = replace(self._slots, **roles)
            return self._slots

    # -- data plane -----------------------------------------------------------------------
    def observe(self, observations: Sequence[Observation],
                deadline_at: float | None = None) -> list[Answer]:
        """Ingest one message's observations (distinct UEs) and answer each, in order.

        ``deadline_at`` is the caller's deadline on the ``time.perf_counter`` clock.
        Raises ``InvalidInput`` / ``PreconditionFailed`` before touching any state when an
        observation is malformed or a delta names an unknown UE.
        """
        answers, background = self.observe_deferred(observations, deadline_at)
        background()
        return answers

    def observe_deferred(self, observations: Sequence[Observation],
                         deadline_at: float | None = None
                         ) -> tuple[list[Answer], Callable[[], None]]:
        """``observe`` that leaves queueing its background work (the scoring of these SRS, the
        shadow run on these windows) to the caller: returns the answers and a function that
        queues it. The gRPC service calls it once the reply is sent, so that the background
        thread does not compete for the GIL while the answer is built and sent. Call that
        function exactly once: ``wait_background`` waits for it. When the call raises, what it
        did ingest is queued for scoring before the error propagates."""
        started = time.perf_counter()
        self._validate(observations)
        known = [None if obs.history is not None else self._known_ue(obs)
                 for obs in observations]
        arrivals: list[Arrival] = []
        try:
            answers, shadow_job = self._serve(observations, known, arrivals, started,
                                              deadline_at)
        except BaseException:
            self._queue_background(arrivals, None)
            raise
        with self._deferred:
            self._outstanding += 1
        return answers, functools.partial(self._queue_deferred, arrivals, shadow_job)

    def _queue_deferred(self, arrivals: list[Arrival],
                        shadow_job: tuple[Callable[[], None], int] | None) -> None:
        """The function ``observe_deferred`` returns: queue the work, count it as handed in."""
        try:
            self._queue_background(arrivals, shadow_job)
        finally:
            with self._deferred:
                self._outstanding -= 1
                self._deferred.notify_all()

    def _serve(self, observations: Sequence[Observation], known: list[UeHistory | None],
               arrivals: list[Arrival], started: float, deadline_at: float | None
               ) -> tuple[list[Answer], tuple[Callable[[], None], int] | None]:
        """Ingest validated ``observations`` (``known``: the tracked UE of each delta, None for
        a history; SRS due for scoring go to ``arrivals``), run the active model once on every
        UE with a full window and answer. Returns the answers and the shadow job on the same
        windows with the bytes it holds (None without a shadow model)."""
        preset = self.preset
        batch = np.empty((len(observations), preset.history, preset.n_ant, preset.n_rb),
                         CHANNEL_DTYPE)                   # model windows, filled in place
        ues = [self._ingest(obs, ue, batch[i], arrivals)
               for i, (obs, ue) in enumerate(zip(observations, known, strict=True))]
        answers = [Answer(obs.ue_id, slot, False)
                   for obs, (_, slot, _) in zip(observations, ues, strict=True)]
        rows = [i for i, (_, _, ready) in enumerate(ues) if ready]
        if not rows:
            return answers, None
        if len(rows) < len(observations):
            batch = batch[rows]                           # some UEs still warming up
        result = self._infer(batch, preset.horizon, started, deadline_at)
        track = result.version or FALLBACK_TRACK
        for j, i in enumerate(rows):
            ue, slot, _ = ues[i]
            self._register(ue, Pending(track, slot, result.future[j], True, ue.group))
            self.scores.count_prediction(track, ue.group, result.reason is not None)
            answers[i] = self._answer(observations[i].ue_id, slot, result, j)
        shadow = self._slots.shadow
        if shadow is None:
            return answers, None
        placeholders = []   # registered now, before any later SRS of these UEs is ingested
        for i in rows:
            ue, slot, _ = ues[i]
            placeholders.append(Pending(shadow.version, slot, None, False, ue.group,
                                        horizon=shadow.horizon))
            self._register(ue, placeholders[-1])
        return answers, (functools.partial(self._run_shadow, shadow, batch, placeholders),
                         batch.nbytes)

    def predict(self, history: np.ndarray, horizon: int = 0, ue_id: str = "",
                deadline_at: float | None = None) -> Answer:
        """Stateless: complex ``[time, antenna, rb]`` (``time >= history``) -> an answer for
        ``horizon`` steps (0 = the task horizon). No per-UE state is read or written."""
        started = time.perf_counter()
        horizon = horizon or self.preset.horizon
        if not 1 <= horizon <= self.preset.horizon:
            raise InvalidInput(f"horizon {horizon} outside 1..{self.preset.horizon}")
        self._check_tensor(history, 3, "history")
        if history.shape[0] < self.preset.history:
            raise InvalidInput(f"history has {history.shape[0]} steps, the model needs "
                               f"{self.preset.history}")
        window = history[None, -self.preset.history:]
        result = self._infer(window, horizon, started, deadline_at)
        self.scores.count_prediction(result.version or FALLBACK_TRACK, None,
                                     result.reason is not None)
        return self._answer(ue_id, 0, result, 0)

    # -- control-plane views --------------------------------------------------------------
    def status(self) -> EngineStatus:
        """Versions, rolling accuracy per model and per UE group, counters, uptime."""
        roles = {v: r for r, v in self._slots.versions().items()}
        roles[FALLBACK_TRACK] = "fallback"
        tracks = [TrackStatus(v, roles.get(v, "retired"), s)
                  for v, s in sorted(self.scores.track_summaries().items())]
        groups = [GroupStatus(g, s, f) for g, (s, f) in sorted(self.scores.group_summaries()
                                                               .items())]
        with self._count_lock:
            served, fallbacks = self._served, dict(self._fallbacks)
        return EngineStatus(self._slots.versions(), tracks, groups, served, fallbacks,
                            time.monotonic() - self._started, len(self.history),
                            self._background.dropped)

    def state_snapshot(self) -> StateSnapshot:
        """Scrape-time view for the Prometheus gauges."""
        status = self.status()
        nmse = {(t.version, t.role): t.nmse.nmse_db for t in status.tracks
                if t.role in ("active", "shadow")}
        return StateSnapshot(nmse, status.versions, status.tracked_ues)

    def wait_background(self, deferred_timeout_s: float = 10.0) -> None:
        """Block until every scoring / shadow job has run (tests, orderly shutdown): first until
        the work handed out by ``observe_deferred`` is queued (at most ``deferred_timeout_s``
        seconds: a caller that never queues it must not hang shutdown), then until the queue
        is idle."""
        with self._deferred:
            self._deferred.wait_for(lambda: self._outstanding == 0, timeout=deferred_timeout_s)
        self._background.wait_idle()

    def close(self) -> None:
        """Stop the background worker."""
        self._background.stop()

    # -- internals ------------------------------------------------------------------------
    def _validate(self, observations: Sequence[Observation]) -> None:
        seen: set[str] = set()
        for obs in observations:
            if not obs.ue_id or len(obs.ue_id.encode()) > MAX_UE_ID_BYTES:
                raise InvalidInput(f"ue_id must be 1..{MAX_UE_ID_BYTES} bytes, "
                                   f"got {obs.ue_id!r:.40}")
            if obs.ue_id in seen:
                raise InvalidInput(f"UE {obs.ue_id!r} appears twice in one message")
            seen.add(obs.ue_id)
            if (obs.srs is None) == (obs.history is None):
                raise InvalidInput(f"UE {obs.ue_id!r}: exactly one of srs / history is needed")
            if obs.srs is not None:
                self._check_tensor(obs.srs, 2, "srs")
            else:
                assert obs.history is not None
                self._check_tensor(obs.history, 3, "history")
                if not 1 <= obs.history.shape[0] <= obs.slot + 1:
                    raise InvalidInput(f"UE {obs.ue_id!r}: a history ending at slot {obs.slot} "
                                       f"has 1..{obs.slot + 1} steps, got "
                                       f"{obs.history.shape[0]}")

    def _check_tensor(self, x: np.ndarray, rank: int, name: str) -> None:
        want = (self.preset.n_ant, self.preset.n_rb)
        if x.ndim != rank or x.shape[-2:] != want:
            axes = "[antenna, rb]" if rank == 2 else "[time, antenna, rb]"
            raise InvalidInput(f"{name} must be {axes} with antenna={want[0]}, rb={want[1]}; "
                               f"got shape {list(x.shape)}")
        if x.dtype.kind != "c":
            raise InvalidInput(f"{name} must be complex, got {x.dtype}")
        if not _all_finite(x):
            raise InvalidInput(f"{name} contains NaN or Inf")

    def _known_ue(self, obs: Observation) -> UeHistory:
        """The tracked UE of a delta observation, whose slot must follow the UE's last slot
        (``PreconditionFailed`` for an unknown UE, ``InvalidInput`` for a stale slot)."""
        ue = self.history.get(obs.ue_id)
        if obs.slot <= ue.slot:
            raise InvalidInput(f"UE {obs.ue_id!r}: slot {obs.slot} is not after its "
                               f"last slot {ue.slot}")
        return ue

    def _ingest(self, obs: Observation, ue: UeHistory | None, row: np.ndarray,
                arrivals: list[Arrival]) -> tuple[UeHistory, int, bool]:
        """Update the UE's ring (``ue``: the tracked UE of a delta, None for a history) and
        add its pending predictions due for scoring to ``arrivals``; copy the model window
        ``[history, a, r]`` into ``row``. Returns (UE, its slot, whether ``row`` holds a window:
        False while the UE warms up)."""
        if obs.history is not None:
            ue = self.history.start(obs.ue_id, obs.group or DEFAULT_GROUP, obs.history,
                                    obs.slot)
        assert ue is not None
        need = self.preset.history
        with ue.lock:
            if obs.srs is not None:
                ue.append(obs.srs, obs.slot)
                due = [p for p in ue.pending if p.step_for(obs.slot) is not None]
                if due:
                    arrivals.append((due, obs.slot, obs.srs))
                ue.pending = [p for p in ue.pending if not p.expired(obs.slot)]
                if obs.group:
                    ue.group = obs.group
            ready = ue.size >= need
            if ready:
                ue.window(need, out=row)
            return ue, ue.slot, ready

    def _queue_background(self, arrivals: list[Arrival],
                          shadow_job: tuple[Callable[[], None], int] | None) -> None:
        """Queue the scoring of one message's SRS (one job for all its UEs), then its shadow
        run (FIFO: this SRS is scored before the shadow run on it)."""
        if arrivals:
            nbytes = sum(srs.nbytes + sum(p.future.nbytes for p in due if p.future is not None)
                         for due, _, srs in arrivals)
            self._background.submit(functools.partial(self.scores.score_many, arrivals), nbytes)
        if shadow_job is not None:
            self._background.submit(*shadow_job)

    def _register(self, ue: UeHistory, pending: Pending) -> None:
        """Attach ``pending`` (made for the UE's newest slot) to its UE: the SRS of its slots
        will find it at ingestion."""
        with ue.lock:
            if ue.slot == pending.base_slot:            # else the UE restarted meanwhile
                ue.pending.append(pending)

    def _infer(self, windows: np.ndarray, horizon: int, started: float,
               deadline_at: float | None) -> _Inference:
        """Active model on ``windows`` ``[n, history, a, r]``, or the fallback with a reason."""
        runner = self._slots.active
        n = windows.shape[0]
        reason = "no_model"
        if runner is not None:
            reason = "deadline" if self._would_blow(runner, n, started, deadline_at) else ""
        if runner is not None and not reason:
            try:
                t0 = time.perf_counter()
                future, scores = runner.predict_with_beams(windows)
                self._record_run(runner.version, n, time.perf_counter() - t0)
                self._count(n, None)
                self.metrics.count_predictions(runner.version, "active", n)
                return _Inference(future[:, :horizon], scores, runner.version, None)
            except Exception:
                log.exception("model %s failed on a batch of %d; answering with the fallback",
                              runner.version, n)
                reason = "model_error"
        future, scores = self.fallback.predict_with_beams(windows, horizon)
        self._count(n, reason)
        self.metrics.count_fallbacks(reason, n)
        return _Inference(future, scores, "", reason)

    def _would_blow(self, runner: OnnxRunner, n: int, started: float,
                    deadline_at: float | None) -> bool:
        limit = deadline_at
        if self.config.deadline_us > 0:
            own = started + self.config.deadline_us * 1e-6
            limit = own if limit is None else min(limit, own)
        if limit is None:
            return False
        with self._times_lock:
            times = sorted(self._run_times.get((runner.version, n), ()))
        expected = times[int(0.9 * (len(times) - 1))] if times else 0.0
        return time.perf_counter() + expected > limit

    def _record_run(self, version: str, n: int, seconds: float) -> None:
        with self._times_lock:
            times = self._run_times.get((version, n))
            if times is None:
                times = self._run_times[(version, n)] = deque(maxlen=RUN_TIME_WINDOW)
            times.append(seconds)

    def _count(self, n: int, reason: str | None) -> None:
        with self._count_lock:
            self._served += n
            if reason is not None:
                self._fallbacks[reason] += n

    def _answer(self, ue_id: str, slot: int, result: _Inference, j: int) -> Answer:
        scores = result.scores[j]
        k = min(self.config.top_k, scores.shape[0])
        top = np.argsort(-scores, kind="stable")[:k]
        return Answer(ue_id, slot, True, result.future[j], top, scores[top], result.version,
                      result.reason)

    def _run_shadow(self, runner: OnnxRunner, windows: np.ndarray,
                    placeholders: list[Pending]) -> None:
        """Shadow model on ``windows`` ``[n, history, a, r]``: fills the placeholders registered
        when the windows were served. FIFO: this runs before the scoring of any later SRS of
        these UEs, so every step is scored even when the background lags far behind."""
        future, _ = runner.predict_with_beams(windows)
        self.metrics.count_predictions(runner.version, "shadow", len(placeholders))
        self.scores.count_prediction(runner.version, None, False, len(placeholders))
        for j, pending in enumerate(placeholders):
            pending.future = future[j]


def _all_finite(x: np.ndarray) -> bool:
    """True when complex ``x`` holds no NaN or Inf. One BLAS dot product ``sum |x|^2`` (a
    fraction of ``np.isfinite(x).all()``'s time on a std history): it is finite exactly when
    every element is, unless it overflows, and only then are the elements checked one by one."""
    return bool(np.isfinite(np.vdot(x, x))) or bool(np.isfinite(x).all())


class _BackgroundWorker:
    """One daemon thread running jobs (zero-argument callables) from a FIFO queue bounded in
    jobs (``maxsize``) and in the bytes their arrays hold (``max_bytes``); a job that does not fit
    is dropped and counted. FIFO order keeps a shadow prediction ahead of the scoring of the SRS
    that follows it."""

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        self._queue: queue.Queue[tuple[Callable[[], None], int] | None] = queue.Queue(maxsize)
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.dropped = 0
        self._bytes_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="kdran-background",
                                        daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None], nbytes: int = 0) -> None:
        """Queue ``job``, which keeps ``nbytes`` of arrays alive until it has run."""
        with self._bytes_lock:
            if self.queued_bytes + nbytes > self.max_bytes:
                self.dropped += 1
                return
            try:
                self._queue.put_nowait((job, nbytes))
            except queue.Full:
                self.dropped += 1
                return
            self.queued_bytes += nbytes

    def wait_idle(self) -> None:
        self._queue.join()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            job, nbytes = item
            try:
                job()
            except Exception:
                log.exception("background job %s failed", job)
            finally:
                with self._bytes_lock:
                    self.queued_bytes -= nbytes
                self._queue.task_done()
        self._queue.task_done()
