"""Re-sync of the xApp's view of each dApp with the dApp's own truth (``GetStatus``).

The registry keeps, per dApp, the roles it believes (``dapp:<name>``: active, shadow, previous)
and, per model, its state on that dApp. A dApp that was killed and restarted comes back with its
last known good active model and, when it still loads, the shadow it had (``dapp.store``), but
with every online score reset; a dApp may also lose the shadow. ``Resync.reconcile``:

1. compares the believed roles with ``status.versions`` and rewrites the registry's roles and
   model states to the dApp's truth (a believed active that is no longer active → ``retired``; a
   believed shadow that is gone → ``discarded``), then logs ``resync_corrected`` with every change
   and updates ``kdran_xapp_model_version_info``, ``kdran_xapp_resync_corrections_total`` and
   ``kdran_xapp_dapp_restarts_total``;
2. when a rollout is in its shadow phase on that dApp (``InFlight``) and the dApp restarted
   (its ``uptime_s`` went down) or no longer holds the shadow, interrupts it: the rollout ends
   with outcome ``interrupted`` (``xapp.rollout``).

It never deploys, promotes or rolls back. It runs every ``rollout.resync_interval_s``
(``ResyncLoop``) and whenever a dApp call succeeds after a failure (``WatchedDapp``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xapp.csi_export import CsiSource
from xapp.logs import decision
from xapp.registry import Registry
from xapp.rollout import DappControl, InFlight, StatusLike

log = logging.getLogger("kdran.xapp.resync")

ROLES = ("active", "shadow", "previous")


@dataclass(frozen=True)
class ResyncReport:
    """What one re-sync of ``dapp`` found: whether it restarted since the last status seen,
    the corrections made to the registry (``"<what>: <believed> -> <truth>"``), and the rollout
    version it interrupted ("" = none)."""

    dapp: str
    restarted: bool
    corrections: tuple[str, ...]
    interrupted: str = ""


def _roles(status: StatusLike) -> dict[str, str]:
    versions = status.versions
    return {"active": versions.active, "shadow": versions.shadow, "previous": versions.previous}


def _model_state(current: str, version: str, truth: dict[str, str]) -> str:
    """The registry state ``version`` (now ``current`` on the dApp) should have given ``truth``."""
    if version == truth["active"]:
        return "active"
    if version == truth["shadow"]:
        return "shadow"
    return {"active": "retired", "shadow": "discarded"}.get(current, current)


RESTART_TOLERANCE_S = 0.5
"""Start-time estimates closer than this are the same process (poll and clock jitter)."""


class Resync:
    """Reconciles the registry with the dApps' status; thread-safe."""

    def __init__(self, registry: Registry, in_flight: InFlight,
                 on_roles: Callable[[str, dict[str, str]], None] | None = None,
                 on_report: Callable[[ResyncReport], None] | None = None) -> None:
        self.registry = registry
        self.in_flight = in_flight
        self._on_roles = on_roles
        self._on_report = on_report
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}

    def note_uptime(self, dapp: str, status: StatusLike, now: float | None = None) -> bool:
        """Remember when ``dapp`` started (``now - uptime_s``, wall-clock s); True when it started
        later than the start seen before (the dApp restarted), whatever the uptimes were — a
        dApp that lived 1 s before a crash and is polled 3 s after its restart still counts. A
        status without ``uptime_s`` never counts as a restart."""
        uptime = float(getattr(status, "uptime_s", math.nan))
        if math.isnan(uptime):
            return False
        started = (time.time() if now is None else now) - uptime
        with self._lock:
            previous = self._started.get(dapp)
            self._started[dapp] = started
        return previous is not None and started > previous + RESTART_TOLERANCE_S

    def sync(self, dapp: str, control: DappControl) -> ResyncReport:
        """Read ``dapp``'s status and reconcile (``grpc.RpcError`` and the like propagate)."""
        return self.reconcile(dapp, control.status())

    def reconcile(self, dapp: str, status: StatusLike) -> ResyncReport:
        """Make the registry match ``status``; interrupt a rollout the dApp can no longer
        finish. Registry writes only: the dApp is never changed."""
        restarted = self.note_uptime(dapp, status)
        truth = _roles(status)
        believed = self.registry.dapp_roles(dapp)
        corrections = [f"{role}: {believed.get(role, '')!r} -> {truth[role]!r}"
                       for role in ROLES if believed.get(role, "") != truth[role]]
        for model in self.registry.models():
            current = model.states.get(dapp, "")
            wanted = _model_state(current, model.version, truth)
            if wanted and wanted != current:
                self.registry.set_model_state(model.version, dapp, wanted)
                corrections.append(f"model {model.version}: {current!r} -> {wanted!r}")
        if believed != truth:
            self.registry.put_dapp_roles(dapp, truth)
            if self._on_roles is not None:
                self._on_roles(dapp, truth)
        interrupted = self._interrupt(dapp, truth["shadow"], restarted)
        if corrections:
            decision("resync_corrected", level=logging.WARNING, dapp=dapp, restarted=restarted,
                     corrections=corrections, roles=truth)
        else:
            decision("resync_ok", level=logging.DEBUG, dapp=dapp, restarted=restarted)
        report = ResyncReport(dapp, restarted, tuple(corrections), interrupted)
        if self._on_report is not None:
            self._on_report(report)
        return report

    def _interrupt(self, dapp: str, shadow: str, restarted: bool) -> str:
        """Interrupt the rollout in flight on ``dapp`` when the dApp restarted or lost its
        shadow; the interrupted version or ""."""
        version = self.in_flight.version(dapp)
        if not version or (shadow == version and not restarted):
            return ""
        reason = ("the dApp restarted during the shadow phase (online scores lost; shadow "
                  f"{'kept' if shadow == version else 'lost'})" if restarted
                  else f"shadow {version} is no longer on the dApp (it has {shadow or 'none'})")
        if not self.in_flight.interrupt(dapp, reason):
            return ""
        decision("resync_rollout_interrupt", level=logging.WARNING, dapp=dapp, version=version,
                 reason=reason)
        return version


class WatchedDapp:
    """A dApp client that notices reconnects: the first call that succeeds after a failed one
    re-syncs the dApp (``Resync``) before returning; every status seen feeds the restart check.
    The wrapped client is ``inner``."""

    def __init__(self, name: str, inner: Any, resync: Resync) -> None:
        self.name, self.inner, self.resync = name, inner, resync
        self._lock = threading.Lock()
        self._down = False

    @property
    def down(self) -> bool:
        """True between a failed call and the next successful one."""
        with self._lock:
            return self._down

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            first, self._down = not self._down, True
        if first:
            decision("dapp_unreachable", level=logging.WARNING, dapp=self.name, error=str(exc))

    def _succeeded(self, status: StatusLike | None = None) -> None:
        with self._lock:
            reconnected, self._down = self._down, False
        if not reconnected:
            if status is not None:
                self.resync.note_uptime(self.name, status)
            return
        decision("dapp_reconnected", dapp=self.name)
        try:
            if status is not None:
                self.resync.reconcile(self.name, status)
            else:
                self.resync.sync(self.name, self.inner)
        except Exception as exc:  # the periodic re-sync tries again
            log.warning("re-sync after reconnect failed",
                        extra={"fields": {"dapp": self.name, "error": str(exc)}})

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            result = method(*args)
        except Exception as exc:
            self._failed(exc)
            raise
        self._succeeded()
        return result

    def status(self) -> StatusLike:
        try:
            status: StatusLike = self.inner.status()
        except Exception as exc:
            self._failed(exc)
            raise
        self._succeeded(status)
        return status

    def deploy_model(self, directory: str | Path, version: str, mode: str = "shadow") -> Any:
        return self._call(self.inner.deploy_model, directory, version, mode)

    def promote(self, version: str = "") -> Any:
        return self._call(self.inner.promote, version)

    def rollback(self) -> Any:
        return self._call(self.inner.rollback)

    def discard_shadow(self) -> Any:
        return self._call(self.inner.discard_shadow)

    def export_recent_csi(self, max_sequences: int = 0, sequence_length: int = 0,
                          ue_group: str = "") -> Iterator[Any]:
        """The wrapped stream; a failure while it streams counts as a failed call."""
        source: CsiSource = self.inner
        try:
            yield from source.export_recent_csi(max_sequences, sequence_length, ue_group)
        except Exception as exc:
            self._failed(exc)
            raise
        self._succeeded()


class ResyncLoop:
    """Re-syncs every dApp (``sync_all``) every ``interval_s()`` seconds in a daemon thread."""

    def __init__(self, sync_all: Callable[[], object], interval_s: Callable[[], float]) -> None:
        self._sync_all, self._interval_s = sync_all, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dapp-resync", daemon=True)

    def start(self) -> ResyncLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s()):
            try:
                self._sync_all()
            except Exception:  # one bad round must not end the loop
                log.exception("periodic re-sync failed")
