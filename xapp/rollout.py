"""Safe rollout of a published model to the dApps over gRPC (``dapp.client.DappClient``).

Per dApp, in order (the canary first, then the rest, one at a time):

1. deploy the artifact in SHADOW (scored on live traffic, never served);
2. wait until the shadow model has ``min_scored_predictions`` scored (prediction, step) pairs
   (``GetStatus``), at most ``shadow_timeout_s``;
3. promote when its online NMSE beats the active model's by ``promote_margin_db`` (dB) — or when
   the dApp has no active model — else discard it; a discard stops the rollout;
4. after promoting on the canary, watch it for ``rollback_watch_s``: if the now-active model's
   online NMSE gets worse than its shadow score by more than ``rollback_degradation_db``, roll
   back and stop.

Every step is a decision log line, a registry state (``shadow``/``active``/``retired``/
``discarded`` per dApp) and, at the end, one ``kdran_xapp_rollouts_total{outcome}``.

While a shadow waits for its scores the rollout is listed in ``InFlight``. A status poll that
fails (dApp down) is retried until ``shadow_timeout_s``; when the re-sync (``xapp.resync``) finds
that the dApp restarted or lost the shadow, it interrupts the rollout: the rollout removes the
shadow if the dApp still holds it and ends with outcome ``interrupted`` (never a promotion or a
rollback).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from xapp.config import RolloutConfig
from xapp.logs import decision
from xapp.registry import Registry

log = logging.getLogger("kdran.xapp.rollout")

OUTCOMES = ("promoted", "discarded", "rolled_back", "failed", "interrupted")


class ModelStatsLike(Protocol):
    version: str
    role: str
    scored: int
    nmse_db: float


class VersionsLike(Protocol):
    active: str
    shadow: str
    previous: str


class StatusLike(Protocol):
    @property
    def versions(self) -> VersionsLike: ...

    @property
    def models(self) -> Sequence[ModelStatsLike]: ...


class DappControl(Protocol):
    """The part of ``dapp.client.DappClient`` a rollout uses."""

    def deploy_model(self, directory: str | Path, version: str, mode: str = "shadow") -> Any: ...

    def promote(self, version: str = "") -> Any: ...

    def rollback(self) -> Any: ...

    def discard_shadow(self) -> Any: ...

    def status(self) -> StatusLike: ...


@dataclass(frozen=True)
class RolloutTarget:
    """One dApp: its name (registry/metrics label) and its control client."""

    name: str
    control: DappControl


@dataclass(frozen=True)
class RolloutResult:
    """``outcome`` (``OUTCOMES``), the dApps that run the model now, and why it ended."""

    version: str
    outcome: str
    promoted_on: tuple[str, ...]
    reason: str
    shadow_nmse_db: float = math.nan
    active_nmse_db: float = math.nan


class RolloutError(Exception):
    """A rollout step failed (RPC error, timeout)."""


class RolloutInterrupted(RolloutError):
    """The dApp restarted or lost the shadow while the rollout waited for its scores."""


class InFlight:
    """Rollouts in their shadow phase, by dApp name (shared by the rollouts and the re-sync);
    thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, str] = {}
        self._interrupts: dict[str, str] = {}

    def begin(self, dapp: str, version: str) -> None:
        """``version`` is in shadow on ``dapp`` and waits for its scores."""
        with self._lock:
            self._versions[dapp] = version
            self._interrupts.pop(dapp, None)

    def end(self, dapp: str) -> None:
        """The shadow phase on ``dapp`` is over (decided, failed or interrupted)."""
        with self._lock:
            self._versions.pop(dapp, None)
            self._interrupts.pop(dapp, None)

    def version(self, dapp: str) -> str:
        """The version in its shadow phase on ``dapp`` ("" = none)."""
        with self._lock:
            return self._versions.get(dapp, "")

    def interrupt(self, dapp: str, reason: str) -> bool:
        """Ask the rollout on ``dapp`` to end as ``interrupted``; False if none is in flight."""
        with self._lock:
            if dapp not in self._versions:
                return False
            self._interrupts[dapp] = reason
            return True

    def check(self, dapp: str) -> None:
        """Raise ``RolloutInterrupted`` when the rollout on ``dapp`` was interrupted."""
        with self._lock:
            reason = self._interrupts.get(dapp)
        if reason is not None:
            raise RolloutInterrupted(reason)


def _stats(status: StatusLike, role: str, version: str) -> ModelStatsLike | None:
    for model in status.models:
        if model.role == role and (not version or model.version == version):
            return model
    return None


class Rollout:
    """Runs rollouts; ``sleep`` and ``clock`` are injectable for tests."""

    def __init__(self, config: RolloutConfig, registry: Registry,
                 on_roles: Callable[[str, dict[str, str]], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 in_flight: InFlight | None = None) -> None:
        self.config = config
        self.registry = registry
        self._on_roles = on_roles
        self._sleep = sleep
        self._clock = clock
        self.in_flight = in_flight or InFlight()
        self._unreachable = False

    def run(self, version: str, artifact_dir: Path, targets: Sequence[RolloutTarget]) -> \
            RolloutResult:
        """Roll ``version`` out to ``targets`` (the first is the canary when ``canary_first``)."""
        promoted: list[str] = []
        last = RolloutResult(version, "failed", (), "no dApp to roll out to")
        for index, target in enumerate(targets):
            try:
                last = self._one(version, artifact_dir, target, watch=index == 0 and
                                 self.config.canary_first)
            except RolloutInterrupted as exc:
                self._end_interrupted(version, target, str(exc))
                return RolloutResult(version, "interrupted", tuple(promoted),
                                     f"{target.name}: {exc}")
            except Exception as exc:  # an RPC failure must end this rollout, not the xApp
                decision("rollout_error", level=logging.WARNING, version=version,
                         dapp=target.name, error=str(exc))
                return RolloutResult(version, "failed", tuple(promoted),
                                     f"{target.name}: {exc}")
            if last.outcome != "promoted":
                return RolloutResult(version, last.outcome, tuple(promoted), last.reason,
                                     last.shadow_nmse_db, last.active_nmse_db)
            promoted.append(target.name)
        return RolloutResult(version, last.outcome, tuple(promoted), last.reason,
                             last.shadow_nmse_db, last.active_nmse_db)

    def _one(self, version: str, artifact_dir: Path, target: RolloutTarget,
             watch: bool) -> RolloutResult:
        control, name, cfg = target.control, target.name, self.config
        control.deploy_model(artifact_dir, version, "shadow")
        self._record(name, control, version, "shadow")
        decision("rollout_shadow", version=version, dapp=name)
        self.in_flight.begin(name, version)
        try:
            shadow, active = self._wait_scored(control, name, version)
        finally:
            self.in_flight.end(name)
        shadow_db = shadow.nmse_db
        active_db = active.nmse_db if active is not None else math.nan
        fields: dict[str, Any] = {
            "version": version, "dapp": name, "shadow_nmse_db": round(shadow_db, 3),
            "active_nmse_db": None if active is None else round(active_db, 3),
            "margin_db": cfg.promote_margin_db}
        if active is not None and not shadow_db <= active_db - cfg.promote_margin_db:
            control.discard_shadow()
            self._record(name, control, version, "discarded")
            decision("rollout_discard", **fields)
            return RolloutResult(version, "discarded", (), "candidate not better by the margin",
                                 shadow_db, active_db)
        old_active = active.version if active is not None else ""
        control.promote(version)
        self._record(name, control, version, "active")
        if old_active:
            self.registry_state(old_active, name, "retired")
        decision("rollout_promote", **fields)
        if watch and self._degraded(control, version, shadow_db):
            control.rollback()
            self._record(name, control, version, "retired")
            if old_active:
                self.registry_state(old_active, name, "active")
            decision("rollout_rollback", level=logging.WARNING, **fields)
            return RolloutResult(version, "rolled_back", (), "promoted model degraded",
                                 shadow_db, active_db)
        return RolloutResult(version, "promoted", (name,), "", shadow_db, active_db)

    def _wait_scored(self, control: DappControl, dapp: str, version: str) -> \
            tuple[ModelStatsLike, ModelStatsLike | None]:
        """Poll until the shadow ``version`` has enough scored predictions.

        A shadow that ``GetStatus`` does not list yet counts as 0 scored for
        ``shadow_listing_timeout_s`` after the deploy (a dApp may list it only once it served);
        after that it is an error (the model was dropped). A failed poll (dApp unreachable) is
        retried until ``shadow_timeout_s``; an interrupt (``InFlight``) ends the wait."""
        start = self._clock()
        deadline = start + self.config.shadow_timeout_s
        listing_deadline = start + self.config.shadow_listing_timeout_s
        unlisted_polls = 0
        while True:
            self.in_flight.check(dapp)
            status = self._poll(control, dapp, version, deadline)
            self.in_flight.check(dapp)  # a reconnect may have re-synced during the poll
            if status is None:
                self._sleep(self.config.poll_interval_s)
                continue
            shadow = _stats(status, "shadow", version)
            if shadow is None:
                if self._clock() >= min(listing_deadline, deadline):
                    raise RolloutError(f"shadow {version} is not loaded on the dApp (not listed "
                                       f"{self.config.shadow_listing_timeout_s:g} s after the "
                                       "deploy)")
                if unlisted_polls == 0:
                    decision("rollout_shadow_unlisted", version=version, scored=0,
                             wait_s=self.config.shadow_listing_timeout_s)
                unlisted_polls += 1
            elif shadow.scored >= self.config.min_scored_predictions:
                return shadow, _stats(status, "active", "")
            if shadow is not None and self._clock() >= deadline:
                raise RolloutError(f"shadow {version} got {shadow.scored} scored predictions in "
                                   f"{self.config.shadow_timeout_s:g} s, needs "
                                   f"{self.config.min_scored_predictions}")
            self._sleep(self.config.poll_interval_s)

    def _poll(self, control: DappControl, dapp: str, version: str,
              deadline: float) -> StatusLike | None:
        """``control.status()``; None while it fails before ``deadline`` (logged), else raises."""
        try:
            status = control.status()
        except Exception as exc:
            if self._clock() >= deadline:
                raise RolloutError(f"dApp unreachable until the shadow timeout: {exc}") from exc
            level = logging.WARNING if not self._unreachable else logging.DEBUG
            self._unreachable = True  # one warning per outage, not one per poll
            decision("rollout_dapp_unreachable", level=level, version=version, dapp=dapp,
                     error=str(exc))
            return None
        was_unreachable, self._unreachable = self._unreachable, False
        if was_unreachable:
            decision("rollout_dapp_reachable", version=version, dapp=dapp)
        return status

    def _end_interrupted(self, version: str, target: RolloutTarget, reason: str) -> None:
        """Remove the interrupted rollout's shadow if the dApp still holds it; record the roles."""
        control, name = target.control, target.name
        try:
            if control.status().versions.shadow == version:
                control.discard_shadow()
            self._record(name, control, version, "discarded")
        except Exception as exc:  # the re-sync records the roles once the dApp answers again
            log.warning("interrupted rollout: cleanup failed",
                        extra={"fields": {"dapp": name, "version": version, "error": str(exc)}})
        decision("rollout_interrupted", level=logging.WARNING, version=version, dapp=name,
                 reason=reason)

    def _degraded(self, control: DappControl, version: str, shadow_db: float) -> bool:
        """Watch the promoted model for ``rollback_watch_s``; True if it degraded."""
        deadline = self._clock() + self.config.rollback_watch_s
        limit = shadow_db + self.config.rollback_degradation_db
        while self._clock() < deadline:
            self._sleep(self.config.poll_interval_s)
            active = _stats(control.status(), "active", version)
            if active is not None and active.scored > 0 and active.nmse_db > limit:
                return True
        return False

    def _record(self, dapp: str, control: DappControl, version: str, state: str) -> None:
        self.registry_state(version, dapp, state)
        versions = control.status().versions
        roles = {"active": versions.active, "shadow": versions.shadow,
                 "previous": versions.previous}
        self.registry.put_dapp_roles(dapp, roles)
        if self._on_roles is not None:
            self._on_roles(dapp, roles)

    def registry_state(self, version: str, dapp: str, state: str) -> None:
        """Record ``state`` for ``version`` on ``dapp`` when the registry knows the model."""
        if self.registry.model(version) is not None:
            self.registry.set_model_state(version, dapp, state)
