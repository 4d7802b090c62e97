"""The model registry in SDL (ricsdl through ricxappframe's ``SDLWrapper``, msgpack values).

Records, one SDL key each in the configured namespace:

- ``model:<version>``: a published model: digest, artifact directory, lineage (parent version,
  teacher), model card, gate results, the job that made it, and its state per dApp
  (``shadow``/``active``/``retired``/``discarded``);
- ``job:<id>``: a re-distillation job: group, trigger, phase with the time each phase began,
  outcome and reason, the artifact and version it produced;
- ``group:<name>``: the policy's ``GroupState`` (cooldown, backoff, job in flight);
- ``dapp:<name>``: the roles of one dApp as last seen (active, shadow, previous).

The registry keeps a copy of every record in memory and writes through to SDL. A write that SDL
refuses because its backend is unreachable (Redis restarting) stays queued; while SDL is down,
writes only queue (no caller waits on a dead connection: the KPM path and the job pipeline keep
going) and a background thread retries every ``RETRY_INTERVAL_S``, as does ``flush()``, so no
state is lost across a Redis restart; ``pending`` says how many writes wait. SDL I/O never runs
under the lock that readers take. ``Registry.open`` loads everything back, so a restarted xApp
resumes.

Backends: real Redis when ``DBAAS_SERVICE_HOST`` (and ``DBAAS_SERVICE_PORT``) are set, which is
how the RIC configures every xApp, or when ``open_sdl(redis_url=...)`` sets them; else ricsdl's
in-memory fake (``use_fake_sdl=True``) for the embedded default.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ricsdl.exceptions import SdlException
from ricxappframe.xapp_sdl import SDLWrapper

from xapp.policy import GroupState

log = logging.getLogger("kdran.xapp.registry")

MODEL_STATES = ("shadow", "active", "retired", "discarded")
RETRY_INTERVAL_S = 1.0
"""Seconds between attempts to flush queued writes while SDL is unreachable."""


class Sdl(Protocol):
    """The part of ``SDLWrapper`` the registry uses."""

    def set(self, ns: str, key: str, value: Any, usemsgpack: bool = True) -> None: ...

    def find_and_get(self, ns: str, prefix: str, usemsgpack: bool = True) -> dict[str, Any]: ...

    def healthcheck(self) -> bool: ...


def open_sdl(redis_url: str | None = None) -> SDLWrapper:
    """An ``SDLWrapper``: on ``redis_url`` (``redis://host:port``), on ``$DBAAS_SERVICE_HOST`` when
    set, else the in-memory fake backend."""
    if redis_url:
        parsed = urllib.parse.urlparse(redis_url)
        if parsed.scheme != "redis" or not parsed.hostname:
            raise ValueError(f"redis URL must look like redis://host:6379, got {redis_url!r}")
        # ricsdl reads its backend address from these variables only (as the RIC sets them).
        os.environ["DBAAS_SERVICE_HOST"] = parsed.hostname
        os.environ["DBAAS_SERVICE_PORT"] = str(parsed.port or 6379)
    return SDLWrapper(use_fake_sdl=not os.environ.get("DBAAS_SERVICE_HOST"))


@dataclass(frozen=True)
class ModelRecord:
    """A published model. ``states`` maps dApp name → one of ``MODEL_STATES``."""

    version: str
    sha256: str
    artifact_dir: str
    parent: str = ""
    teacher: str = ""
    job_id: str = ""
    created_at: float = 0.0
    card: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRecord:
    """A re-distillation job. ``phases`` maps phase → UNIX time it began; ``outcome`` is ""
    while running, else ``succeeded``/``failed``/``gates_failed``."""

    job_id: str
    group: str
    trigger: str
    created_at: float
    phase: str = "pending"
    phases: dict[str, float] = field(default_factory=dict)
    outcome: str = ""
    reason: str = ""
    spec_path: str = ""
    artifact_dir: str = ""
    version: str = ""
    rollout: str = ""
    """Rollout outcome of the model it produced (``promoted``/``discarded``/...)."""
    attempt: int = 1
    """1 for a first run; n for the (n-1)-th automatic retry."""
    retry_of: str = ""
    """The failed job this one retries ("" for a first run)."""


def _from_dict(cls: type[Any], data: Mapping[str, Any]) -> Any:
    return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class Registry:
    """Write-through cache of the registry records over an SDL namespace; thread-safe."""

    def __init__(self, sdl: Sdl, namespace: str) -> None:
        self._sdl = sdl
        self._ns = namespace
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        """One flusher at a time (keeps the queue's order); never held with ``_lock`` waiting."""
        self._cache: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._down_since = 0.0
        self._retrier: threading.Thread | None = None

    @classmethod
    def open(cls, sdl: Sdl, namespace: str) -> Registry:
        """Load every record of ``namespace``. Raises ``SdlException`` when SDL is unreachable
        (an xApp must not start on an empty registry while its real one is down)."""
        registry = cls(sdl, namespace)
        registry._cache = {k: dict(v) for k, v in sdl.find_and_get(namespace, "").items()}
        log.info("registry loaded", extra={"fields": {"records": len(registry._cache),
                                                      "namespace": namespace}})
        return registry

    # -- raw access ------------------------------------------------------------------------------
    def _get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._cache.get(key)
            return dict(value) if value is not None else None

    def _prefixed(self, prefix: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k[len(prefix):]: dict(v) for k, v in self._cache.items()
                    if k.startswith(prefix)}

    def _put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._cache[key] = value
            self._pending[key] = value
            down = bool(self._down_since)
        if not down:  # while SDL is down the retry thread flushes
            self.flush()

    def flush(self) -> bool:
        """Write queued records to SDL; True when none is left waiting."""
        with self._flush_lock:
            while True:
                with self._lock:
                    if not self._pending:
                        break
                    key, value = next(iter(self._pending.items()))
                try:
                    self._sdl.set(self._ns, key, value)
                except SdlException as exc:
                    self._went_down(key, exc)
                    return False
                with self._lock:
                    if self._pending.get(key) is value:  # not rewritten meanwhile
                        del self._pending[key]
            with self._lock:
                if self._down_since:
                    log.info("SDL reachable again; queued writes flushed",
                             extra={"fields": {"down_s": round(time.time() - self._down_since,
                                                               3)}})
                    self._down_since = 0.0
            return True

    def _went_down(self, key: str, exc: SdlException) -> None:
        """Note the outage (logged once) and make sure the retry thread runs."""
        with self._lock:
            if not self._down_since:
                self._down_since = time.time()
                log.warning("SDL write failed; queued",
                            extra={"fields": {"key": key, "error": str(exc)}})
            if self._retrier is None or not self._retrier.is_alive():
                self._retrier = threading.Thread(target=self._retry, name="sdl-retry",
                                                 daemon=True)
                self._retrier.start()

    def _retry(self) -> None:
        while True:
            time.sleep(RETRY_INTERVAL_S)
            with self._lock:
                if not self._down_since:
                    return
            if self.flush():
                return

    @property
    def pending(self) -> int:
        """Writes waiting for SDL to come back."""
        with self._lock:
            return len(self._pending)

    def healthy(self) -> bool:
        """SDL answers and no write is waiting."""
        try:
            return bool(self._sdl.healthcheck()) and self.flush()
        except SdlException:
            return False

    # -- models ----------------------------------------------------------------------------------
    def put_model(self, record: ModelRecord) -> None:
        self._put(f"model:{record.version}", asdict(record))

    def model(self, version: str) -> ModelRecord | None:
        data = self._get(f"model:{version}")
        return _from_dict(ModelRecord, data) if data else None

    def models(self) -> list[ModelRecord]:
        """All models, oldest first."""
        records = [_from_dict(ModelRecord, v) for v in self._prefixed("model:").values()]
        return sorted(records, key=lambda r: (r.created_at, r.version))

    def set_model_state(self, version: str, dapp: str, state: str) -> None:
        """Record that ``version`` is in ``state`` on ``dapp``."""
        if state not in MODEL_STATES:
            raise ValueError(f"model state must be one of {MODEL_STATES}, got {state!r}")
        with self._lock:
            record = self.model(version)
            if record is None:
                raise KeyError(f"model {version!r} is not in the registry")
            self.put_model(ModelRecord(**{**asdict(record),
                                          "states": {**record.states, dapp: state}}))

    # -- jobs ------------------------------------------------------------------------------------
    def put_job(self, record: JobRecord) -> None:
        self._put(f"job:{record.job_id}", asdict(record))

    def job(self, job_id: str) -> JobRecord | None:
        data = self._get(f"job:{job_id}")
        return _from_dict(JobRecord, data) if data else None

    def jobs(self) -> list[JobRecord]:
        """Job history, oldest first."""
        records = [_from_dict(JobRecord, v) for v in self._prefixed("job:").values()]
        return sorted(records, key=lambda r: (r.created_at, r.job_id))

    def update_job(self, job_id: str, **changes: Any) -> JobRecord:
        """Replace fields of a job record; a new ``phase`` is stamped into ``phases``."""
        with self._lock:
            record = self.job(job_id)
            if record is None:
                raise KeyError(f"job {job_id!r} is not in the registry")
            data = {**asdict(record), **changes}
            if "phase" in changes:
                data["phases"] = {**record.phases, changes["phase"]: time.time()}
            updated: JobRecord = _from_dict(JobRecord, data)
            self.put_job(updated)
            return updated

    # -- policy groups (xapp.policy.PolicyStore) -------------------------------------------------
    def group_states(self) -> dict[str, GroupState]:
        return {g: GroupState.from_dict(v) for g, v in self._prefixed("group:").items()}

    def put_group_state(self, group: str, state: GroupState) -> None:
        self._put(f"group:{group}", state.to_dict())

    # -- dApp roles ------------------------------------------------------------------------------
    def put_dapp_roles(self, dapp: str, roles: Mapping[str, str]) -> None:
        self._put(f"dapp:{dapp}", dict(roles))

    def dapp_roles(self, dapp: str) -> dict[str, str]:
        return self._get(f"dapp:{dapp}") or {}
