"""The xApp's core, independent of how E2 messages arrive (RMR in the RIC, in-process locally).

``Controller.on_indication(payload, sub_id)`` decodes a RICindication with the subscription it
answers (``SubscriptionTable``), updates the per-cell gauges, runs drift detection, asks the
policy, and on a launch runs the re-distillation pipeline in a worker thread:

``exporting_csi`` (recent CSI from the group's dApps into the artifact store, waiting a bounded
time for enough full-length windows) → the job (``adapting`` … ``published``, from its phase lines)
→ registry entry → ``rollout`` (shadow, compare, promote/discard, canary watch) → policy cooldown or
backoff.

Faults: a job that fails (error or deadline) is retried automatically when its backoff ends, at
most ``policy.max_retries`` times (each retry is a new job record with ``attempt`` and
``retry_of``); a gates refusal is a verdict, not a fault, and is not retried; a job that found too
little CSI ends as ``no_data`` and frees its group without backoff.

Every step is a decision log line, a metric and a registry record.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from csi.presets import get_preset
from xapp.config import Controls, DappEndpoint
from xapp.csi_export import CsiSource, NoRecentCsi, export_when_ready
from xapp.drift import DriftEvent, DriftMonitor, KpmSample, StreamKey
from xapp.e2 import E2DecodeError, KpmReport, decode_indication
from xapp.e2 import measurements as m
from xapp.jobs import JobLauncher, JobResult, JobSpec
from xapp.logs import decision
from xapp.metrics import XappMetrics
from xapp.policy import Decision, GroupState, Policy
from xapp.registry import JobRecord, ModelRecord, Registry
from xapp.resync import Resync, ResyncLoop, ResyncReport, WatchedDapp
from xapp.rollout import DappControl, InFlight, Rollout, RolloutResult, RolloutTarget

log = logging.getLogger("kdran.xapp.controller")


class DappHandle(DappControl, CsiSource, Protocol):
    """A dApp client: control plane and CSI export (``dapp.client.DappClient``)."""


DappFactory = Callable[[DappEndpoint], DappHandle]


@dataclass(frozen=True)
class Subscribed:
    """What an indication's subscription id stands for: the node, the cell and the measurement
    names in the order of the action definition."""

    e2_node: str
    cell: str
    measurement_names: tuple[str, ...]


class SubscriptionTable:
    """``sub_id`` (RIC instance id / submgr ``E2EventInstanceId``) → ``Subscribed``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, Subscribed] = {}

    def add(self, sub_id: int, subscribed: Subscribed) -> None:
        with self._lock:
            self._by_id[sub_id] = subscribed

    def remove(self, sub_id: int) -> None:
        with self._lock:
            self._by_id.pop(sub_id, None)

    def get(self, sub_id: int) -> Subscribed | None:
        with self._lock:
            return self._by_id.get(sub_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def sample_from_report(report: KpmReport, sub: Subscribed, per_ue_group: bool) -> KpmSample:
    """A ``KpmSample`` for drift detection from one decoded KPM report."""
    group = str(report.ue_id) if (per_ue_group and report.ue_id is not None) else ""
    key = StreamKey(sub.e2_node, report.cell_id or sub.cell, group)
    return KpmSample(key, report.value(m.CHPRED_NMSE_DB_MEAN), report.value(m.CHPRED_NMSE_DB_P90),
                     _int(report.value(m.CHPRED_COUNT)), _int(report.value(m.CHPRED_FALLBACK)),
                     _int(report.value(m.TB_TOT_NBR_DL)), _int(report.value(m.TB_ERR_TOTAL_NBR_DL)))


def new_id(now: float) -> str:
    """A sortable, unique job id: ``YYYYmmddHHMMSS-<6 hex>`` (UTC)."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(3)


class Controller:
    """Drift → policy → job → registry → rollout, for every subscribed cell."""

    def __init__(self, controls: Controls, registry: Registry, launcher: JobLauncher,
                 dapp_factory: DappFactory, metrics: XappMetrics | None = None,
                 clock: Callable[[], float] = time.time,
                 rollout_sleep: Callable[[float], None] = time.sleep) -> None:
        self.controls = controls
        self.registry = registry
        self.launcher = launcher
        self.dapp_factory = dapp_factory
        self.metrics = metrics or XappMetrics()
        self.clock = clock
        self.subscriptions = SubscriptionTable()
        self.drift = DriftMonitor(controls.drift)
        self.policy = Policy(controls.policy, registry, self._count_suppression)
        self._rollout_sleep = rollout_sleep
        self._lock = threading.Lock()
        self._drift_lock = threading.Lock()
        self._workers: dict[str, threading.Thread] = {}
        self._retries: dict[str, threading.Timer] = {}
        """Scheduled retries by the failed job's id."""
        self._dapps: dict[str, DappHandle] = {}
        self.in_flight = InFlight()
        self.resync = Resync(registry, self.in_flight, self.metrics.set_model_versions,
                             self.metrics.record_resync)
        self._resync_loop: ResyncLoop | None = None

    # -- configuration -------------------------------------------------------------------------
    def reconfigure(self, controls: Controls) -> None:
        """Apply a reloaded ``controls`` (drift detectors restart when their settings changed)."""
        if controls.drift != self.controls.drift:
            with self._drift_lock:
                self.drift.reconfigure(controls.drift)
        self.policy.config = controls.policy
        self.controls = controls
        decision("config_reloaded")

    def _count_suppression(self, reason: str) -> None:
        self.metrics.triggers_suppressed.labels(reason=reason).inc()

    # -- startup ---------------------------------------------------------------------------------
    def resume(self) -> list[str]:
        """After a restart: jobs the registry shows unfinished were lost with the old process
        (their worker thread); mark them failed and release their groups. Returns their ids."""
        interrupted = []
        now = self.clock()
        for job in self.registry.jobs():
            if not job.outcome:
                job = self.registry.update_job(job.job_id, outcome="failed",
                                               reason="interrupted by an xApp restart")
                state = self.policy.finished(job.group, job.job_id, False, now)
                self._maybe_retry(job, job.group.split("/")[0], state)
                interrupted.append(job.job_id)
        for endpoint in self.controls.dapps.endpoints:
            roles = self.registry.dapp_roles(endpoint.name)
            if roles:
                self.metrics.set_model_versions(endpoint.name, roles)
        decision("resumed", jobs=len(self.registry.jobs()), models=len(self.registry.models()),
                 interrupted=interrupted)
        return interrupted

    # -- E2 --------------------------------------------------------------------------------------
    def on_indication(self, payload: bytes, sub_id: int) -> list[DriftEvent]:
        """Handle one RICindication (RMR 12050) for subscription ``sub_id``."""
        self.metrics.kpm_reports.labels(outcome="received").inc()
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            self.metrics.kpm_reports.labels(outcome="failed").inc()
            log.warning("indication for unknown subscription", extra={"fields": {"sub_id": sub_id}})
            return []
        try:
            indication = decode_indication(payload, cell_id=sub.cell,
                                           measurement_names=sub.measurement_names)
        except E2DecodeError as exc:
            self.metrics.kpm_reports.labels(outcome="failed").inc()
            log.warning("undecodable indication", extra={"fields": {"sub_id": sub_id,
                                                                    "reason": exc.reason}})
            return []
        self.metrics.kpm_reports.labels(outcome="decoded").inc()
        events: list[DriftEvent] = []
        for report in indication.reports:
            events.extend(self.on_sample(sample_from_report(report, sub,
                                                            self.controls.drift.per_ue_group)))
        return events

    def on_sample(self, sample: KpmSample) -> list[DriftEvent]:
        """Gauges, drift detection and, on drift, the policy for one stream's report."""
        label = sample.key.label
        if sample.nmse_db is not None:
            self.metrics.cell_nmse_db.labels(cell=label).set(sample.nmse_db)
        if sample.fallback_ratio is not None:
            self.metrics.cell_fallback_ratio.labels(cell=label).set(sample.fallback_ratio)
        with self._drift_lock:
            now = self.clock()
            events = self.drift.observe(sample, now)
            in_drift = self.drift.streams[sample.key].in_drift
            evicted = self.drift.evict(now)
        self.metrics.drift_state.labels(cell=label).set(1 if in_drift else 0)
        if evicted:
            self.metrics.forget_cells([key.label for key in evicted])
            log.debug("streams evicted", extra={"fields": {"count": len(evicted),
                                                           "first": evicted[0].label}})
        for event in events:
            self.metrics.drift_events.labels(cell=label, detector=event.detector).inc()
            decision("drift", cell=sample.key.cell, ue_group=sample.key.ue_group,
                     e2_node=sample.key.e2_node, detector=event.detector,
                     value=round(event.value, 4), reference=round(event.reference, 4),
                     report=event.report_index)
        if events:
            self.trigger(self.group_of(sample.key), sample.key.e2_node,
                         reason=events[0].detector)
        return events

    def _reset_drift(self, e2_node: str) -> None:
        """A new model runs on ``e2_node``: its streams start over (and leave the drift state)."""
        with self._drift_lock:
            self.drift.reset(e2_node)
            labels = [key.label for key in self.drift.streams if key.e2_node == e2_node]
        for label in labels:
            self.metrics.drift_state.labels(cell=label).set(0)
        decision("drift_reset", e2_node=e2_node)

    def group_of(self, key: StreamKey) -> str:
        """The policy group of a stream (``policy.group_by``)."""
        by = self.controls.policy.group_by
        if by == "cell":
            return f"{key.e2_node}/{key.cell}"
        if by == "ue_group":
            return f"{key.e2_node}/{key.label}"
        return key.e2_node

    # -- triggering ------------------------------------------------------------------------------
    def trigger(self, group: str, e2_node: str, reason: str, manual: bool = False) -> str | None:
        """Ask the policy; on launch start the pipeline thread. Returns the job id or None."""
        return self._launch(group, e2_node, reason, manual)[0]

    def _launch(self, group: str, e2_node: str, reason: str, manual: bool = False,
                retry_of: str = "", attempt: int = 1) -> tuple[str | None, Decision]:
        """``trigger`` with the policy's verdict, for first runs and retries."""
        with self._lock:
            verdict = self.policy.decide(group, self.clock(), manual=manual, retry=bool(retry_of))
            if not verdict.launch:
                return None, verdict
            now = self.clock()
            job_id = new_id(now)
            self.policy.started(group, job_id)
            self.registry.put_job(JobRecord(job_id, group, "manual" if manual else reason, now,
                                            phases={"pending": now}, attempt=attempt,
                                            retry_of=retry_of))
            self.metrics.jobs.move(None, "pending")
            worker = threading.Thread(target=self._pipeline, args=(job_id, group, e2_node),
                                      name=f"job-{job_id}", daemon=True)
            self._workers[job_id] = worker
            worker.start()
        return job_id, verdict

    def skip(self, group: str, duration_s: float) -> None:
        """Manual skip: no drift-triggered job in ``group`` for ``duration_s``."""
        self.policy.skip(group, duration_s, self.clock())

    def wait_idle(self, timeout_s: float, retries: bool = False) -> bool:
        """Join every pipeline thread (tests, shutdown) and, with ``retries``, every scheduled
        retry and the jobs it starts; True if all ended in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                busy: list[threading.Thread] = [w for w in self._workers.values() if w.is_alive()]
                if retries:
                    busy += [t for t in self._retries.values() if t.is_alive()]
            if not busy:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            busy[0].join(min(left, 0.5))

    def close(self) -> None:
        """Cancel scheduled retries and the periodic re-sync (shutdown); running jobs are left to
        finish or be resumed."""
        if self._resync_loop is not None:
            self._resync_loop.stop()
        with self._lock:
            timers, self._retries = list(self._retries.values()), {}
        for timer in timers:
            timer.cancel()

    # -- retries ---------------------------------------------------------------------------------
    def _maybe_retry(self, job: JobRecord, e2_node: str, state: GroupState) -> None:
        """Schedule a retry of failed ``job`` when its group's backoff ends (within
        ``policy.max_retries``)."""
        if job.outcome != "failed":
            return
        if job.attempt > self.controls.policy.max_retries:
            decision("job_retries_exhausted", level=logging.WARNING, job_id=job.job_id,
                     group=job.group, attempts=job.attempt)
            return
        delay = max(0.0, state.backoff_until - self.clock())
        self._schedule_retry(job.job_id, job.group, e2_node, job.attempt + 1, delay)

    def _schedule_retry(self, job_id: str, group: str, e2_node: str, attempt: int,
                        delay_s: float) -> None:
        timer = threading.Timer(delay_s, self._retry, (job_id, group, e2_node, attempt))
        timer.name, timer.daemon = f"retry-{job_id}", True
        with self._lock:
            self._retries[job_id] = timer
        decision("job_retry_scheduled", job_id=job_id, group=group, attempt=attempt,
                 in_s=round(delay_s, 3))
        timer.start()

    def _retry(self, job_id: str, group: str, e2_node: str, attempt: int) -> None:
        """Relaunch a failed job; a full global budget defers it, anything else drops it."""
        new_id_, verdict = self._launch(group, e2_node, "retry", retry_of=job_id,
                                        attempt=attempt)
        with self._lock:
            self._retries.pop(job_id, None)
        if new_id_ is not None:
            decision("job_retry", job_id=new_id_, retry_of=job_id, attempt=attempt)
        elif verdict.reason == "budget":
            self._schedule_retry(job_id, group, e2_node, attempt,
                                 self.controls.policy.backoff_initial_s)
        else:
            decision("job_retry_dropped", job_id=job_id, group=group, attempt=attempt,
                     reason=verdict.reason)

    # -- the pipeline ----------------------------------------------------------------------------
    def _phase(self, job_id: str, old: str, new: str) -> str:
        self.registry.update_job(job_id, phase=new)
        self.metrics.jobs.move(old, new)
        decision("job_phase", job_id=job_id, phase=new)
        return new

    def dapp_client(self, endpoint: DappEndpoint) -> DappHandle:
        """The client of ``endpoint``, watched for reconnects (``xapp.resync.WatchedDapp``)."""
        with self._lock:
            if endpoint.name not in self._dapps:
                self.metrics.track_dapp(endpoint.name)
                self._dapps[endpoint.name] = WatchedDapp(endpoint.name,
                                                         self.dapp_factory(endpoint),
                                                         self.resync)
            return self._dapps[endpoint.name]

    # -- re-sync with the dApps ------------------------------------------------------------------
    def resync_all(self) -> list[ResyncReport]:
        """Reconcile the registry with every configured dApp's ``GetStatus``; a dApp that does
        not answer is skipped (logged) until it reconnects."""
        reports = []
        for endpoint in self.controls.dapps.endpoints:
            try:
                reports.append(self.resync.sync(endpoint.name, self.dapp_client(endpoint)))
            except Exception as exc:
                log.warning("re-sync failed", extra={"fields": {"dapp": endpoint.name,
                                                                "error": str(exc)}})
        return reports

    def start_resync(self) -> None:
        """Re-sync every ``rollout.resync_interval_s`` in a background thread."""
        if self._resync_loop is None:
            self._resync_loop = ResyncLoop(self.resync_all,
                                           lambda: self.controls.rollout.resync_interval_s)
            self._resync_loop.start()

    def _pipeline(self, job_id: str, group: str, e2_node: str) -> None:
        phase = "pending"
        result = JobResult(job_id, "failed", "pipeline did not run")
        rollout: RolloutResult | None = None
        try:
            endpoints = self.controls.dapps_for_node(e2_node)
            phase = self._phase(job_id, phase, "exporting_csi")
            spec, spec_path = self._prepare(job_id, group, endpoints)
            self.registry.update_job(job_id, spec_path=str(spec_path))

            def on_phase(new: str) -> None:
                nonlocal phase
                phase = self._phase(job_id, phase, new)

            record = self.registry.job(job_id)
            labels = {"group": group, "trigger": record.trigger if record else ""}
            result = self.launcher.run(spec, spec_path, labels, on_phase)
            if result.succeeded:
                self._register(spec, result)
                phase = self._phase(job_id, phase, "rollout")
                targets = [RolloutTarget(e.name, self.dapp_client(e)) for e in endpoints]
                rollout = self._rollout().run(result.version, Path(result.artifact_dir), targets)
        except NoRecentCsi as exc:  # not enough data yet: no failure, no backoff
            result = JobResult(job_id, "no_data", str(exc))
            decision("job_no_data", level=logging.WARNING, job_id=job_id, group=group,
                     reason=str(exc), note="the group is free again; a later drift or manual "
                                           "trigger starts a new job")
        except Exception as exc:  # the pipeline must always release its group
            log.exception("job pipeline failed", extra={"fields": {"job_id": job_id}})
            result = replace(result, outcome="failed", reason=f"{type(exc).__name__}: {exc}")
        self._finish(job_id, group, e2_node, phase, result, rollout)

    def _rollout(self) -> Rollout:
        return Rollout(self.controls.rollout, self.registry, self.metrics.set_model_versions,
                       sleep=self._rollout_sleep, in_flight=self.in_flight)

    def _prepare(self, job_id: str, group: str, endpoints: Sequence[DappEndpoint]) -> \
            tuple[JobSpec, Path]:
        """Export recent CSI and write the spec under ``<store>/jobs/<job_id>/``."""
        jobs = self.controls.jobs
        root = Path(self.controls.artifact_store.path) / "jobs" / job_id
        preset = get_preset(jobs.preset)
        sources: dict[str, CsiSource] = {e.name: self.dapp_client(e) for e in endpoints}
        data_hash, n = export_when_ready(sources, preset, jobs.recent_csi_max_sequences,
                                         root / "data", jobs.recent_csi_min_windows,
                                         jobs.recent_csi_wait_s, jobs.recent_csi_poll_s)
        decision("csi_exported", job_id=job_id, windows=n, data_hash=data_hash)
        parent = self._active_version(endpoints[0]) if endpoints else ""
        parent_model = self.registry.model(parent) if parent else None
        deployed = Path(parent_model.artifact_dir) / "model.onnx" if parent_model else None
        record = self.registry.job(job_id)
        spec = JobSpec(job_id=job_id, data_dir=str(root / "data"), output_dir=str(root / "out"),
                       preset=jobs.preset, teacher=jobs.teacher, parent_version=parent,
                       deployed_model=str(deployed) if deployed and deployed.exists() else "",
                       gates=dict(jobs.gates),
                       require_validated_teacher=jobs.require_validated_teacher,
                       trigger={"group": group, "reason": record.trigger if record else "",
                                "at": record.created_at if record else self.clock()})
        return spec, spec.write(root)

    def _active_version(self, endpoint: DappEndpoint) -> str:
        """The model the dApp serves now (the new model's parent); registry view as fallback."""
        try:
            return str(self.dapp_client(endpoint).status().versions.active)
        except Exception as exc:  # status is advisory here; the job can run without a parent
            log.warning("dApp status failed", extra={"fields": {"dapp": endpoint.name,
                                                                "error": str(exc)}})
            return self.registry.dapp_roles(endpoint.name).get("active", "")

    def _register(self, spec: JobSpec, result: JobResult) -> None:
        card_path = Path(result.artifact_dir) / "card.json"
        card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.exists() else {}
        sums = Path(result.artifact_dir) / "SHA256SUMS"
        digest = ""
        if sums.exists():
            for line in sums.read_text().splitlines():
                if line.strip().endswith("model.onnx"):
                    digest = line.split()[0]
        gates = result.gates or (card.get("gates") if isinstance(card.get("gates"), dict)
                                 else {}) or {}
        self.registry.put_model(ModelRecord(
            version=result.version, sha256=digest, artifact_dir=result.artifact_dir,
            parent=spec.parent_version, teacher=spec.teacher or str(card.get("teacher", "")),
            job_id=spec.job_id, created_at=self.clock(), card=card, gates=gates))
        decision("model_registered", version=result.version, job_id=spec.job_id,
                 parent=spec.parent_version)

    def _finish(self, job_id: str, group: str, e2_node: str, phase: str, result: JobResult,
                rollout: RolloutResult | None) -> None:
        self.metrics.jobs.move(phase, None)
        self.metrics.jobs_finished.labels(outcome=result.outcome).inc()
        changes: dict[str, Any] = {"outcome": result.outcome, "reason": result.reason,
                                   "artifact_dir": result.artifact_dir, "version": result.version}
        if rollout is not None:
            self.metrics.rollouts.labels(outcome=rollout.outcome).inc()
            changes["rollout"] = rollout.outcome
            if rollout.outcome == "promoted":
                self._reset_drift(e2_node)
        job = self.registry.update_job(job_id, **changes)
        decision("job_finished", job_id=job_id, group=group, outcome=result.outcome,
                 reason=result.reason, version=result.version,
                 rollout=rollout.outcome if rollout else None, attempt=job.attempt,
                 logs_tail=result.logs[-2000:] if not result.succeeded else None)
        if result.outcome == "no_data":
            self.policy.released(group, job_id)
            return
        state = self.policy.finished(group, job_id, result.succeeded, self.clock())
        self._maybe_retry(job, e2_node, state)
