"""Model lifecycle: deploy (verify, load, install), promote, rollback, discard, restore.

``ModelManager`` ties the on-disk ``ModelStore`` to the ``Engine``'s model slots. Uploads are
received and verified without any lock; the role change (slot swap + ``state.json``) happens under
one lock, so control operations are serialised and the persisted state always matches what is
served. A model is loaded (ONNX Runtime session, metadata checked against the task, warm-up) before
it is installed or given a role, so a model that does not load never replaces a working one.
With verification keys (``dapp.verify``), the signature is checked on the header before any byte
is stored, and every stored model is checked again when it is loaded from disk (restart,
rollback). An upload that fails or is cancelled midway is deleted from the staging area.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dapp.artifact import ModelArtifact, check_version, load_artifact, parse_card
from dapp.engine import Engine
from dapp.errors import AlreadyExists, DappError, InvalidInput, PreconditionFailed, TooLarge
from dapp.limits import MAX_BATCH, MAX_CHUNK_BYTES, MAX_MODEL_BYTES
from dapp.messages import DeployResult, Versions
from dapp.runner import OnnxRunner
from dapp.store import ModelStore, StoreState, Upload
from dapp.verify import ModelVerifier
from kdran.signing import Signature

log = logging.getLogger(__name__)

MODES = ("shadow", "active")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DeploySpec:
    """The header of a deployment: ``mode`` is ``"shadow"`` or ``"active"``."""

    version: str
    sha256: str
    mode: str
    total_size: int
    card_json: str = ""
    signature: bytes = b""
    signing_key_id: str = ""


@dataclass(frozen=True)
class RunnerOptions:
    """ONNX Runtime settings for every model this dApp loads."""

    intra_threads: int = 1
    inter_threads: int = 1
    max_batch: int = MAX_BATCH


class ModelManager:
    """Control plane of one dApp."""

    def __init__(self, engine: Engine, store: ModelStore,
                 runner_options: RunnerOptions | None = None,
                 max_chunk_bytes: int = MAX_CHUNK_BYTES,
                 max_model_bytes: int = MAX_MODEL_BYTES,
                 verifier: ModelVerifier | None = None) -> None:
        self.engine, self.store = engine, store
        self.verifier = verifier or ModelVerifier()
        self.runner_options = runner_options or RunnerOptions()
        self.max_chunk_bytes, self.max_model_bytes = max_chunk_bytes, max_model_bytes
        self._lock = threading.Lock()
        self._state = store.read_state()

    # -- operations -----------------------------------------------------------------------
    def deploy(self, spec: DeploySpec, chunks: Iterable[bytes]) -> DeployResult:
        """Receive ``chunks`` (the bytes of model.onnx), verify, load, install, assign a role."""
        self._check_spec(spec)
        parse_card(spec.card_json)
        signature = self._check_signature(spec)
        upload = self.store.begin_upload()
        try:
            self._receive(upload, spec, chunks)
            upload.finish()
            t0 = time.perf_counter()
            runner = self._load(upload.path, expect_version=spec.version)
            load_ms = (time.perf_counter() - t0) * 1e3
            with self._lock:
                existing = self.store.installed(spec.version)
                if existing is not None and existing.sha256 != spec.sha256:
                    raise AlreadyExists(f"version {spec.version} is installed with sha256 "
                                        f"{existing.sha256}, not {spec.sha256}")
                if existing is None:
                    self.store.commit(upload, spec.version, spec.card_json,
                                      signature.to_json() if signature else "")
                runner.path = self.store.path(spec.version) / "model.onnx"
                self._assign(spec.mode, runner)
                versions = self.versions()
        finally:
            self.store.discard(upload)
        log.info("deployed %s as %s (%d bytes, loaded in %.1f ms)", spec.version, spec.mode,
                 upload.size, load_ms)
        return DeployResult(spec.version, spec.mode, spec.sha256, upload.size, load_ms, versions)

    def promote(self, expected: str = "") -> Versions:
        """Shadow -> active in one swap; the old active becomes the rollback target."""
        with self._lock:
            shadow = self.engine.slots.shadow
            if shadow is None:
                raise PreconditionFailed("no shadow model to promote")
            if expected and shadow.version != expected:
                raise PreconditionFailed(f"shadow is {shadow.version}, not {expected}")
            old = self.engine.slots.active
            self.engine.set_models(active=shadow, shadow=None)
            self._persist(active=shadow.version, shadow=None, previous=self._pushed(old))
            log.info("promoted %s (previous active %s)", shadow.version,
                     old.version if old else None)
            return self.versions()

    def rollback(self) -> Versions:
        """Restore the previous active model (loaded from the store)."""
        with self._lock:
            previous = list(self._state.previous)
            if not previous:
                raise PreconditionFailed("no previous active model to roll back to")
            target = previous.pop()
            runner = self._load_installed(target)
            dropped = self.engine.slots.active
            self.engine.set_models(active=runner)
            self._persist(active=target, shadow=self._state.shadow, previous=previous)
            log.info("rolled back from %s to %s", dropped.version if dropped else None, target)
            return self.versions()

    def discard_shadow(self) -> Versions:
        """Unload the shadow model, if any."""
        with self._lock:
            self.engine.set_models(shadow=None)
            self._persist(active=self._state.active, shadow=None,
                          previous=list(self._state.previous))
            return self.versions()

    def versions(self) -> Versions:
        """Current roles."""
        slots = self.engine.slots
        return Versions(slots.active.version if slots.active else "",
                        slots.shadow.version if slots.shadow else "",
                        self._state.previous[-1] if self._state.previous else "")

    def restore(self, seed: Path | None = None) -> Versions:
        """Load the persisted roles (last known good active, then older ones if it fails to
        load or verify); with no usable active model, install ``seed`` (an artifact directory)
        as active. A seed that does not load or verify is logged and the dApp starts without a
        model (AR fallback) rather than not at all."""
        with self._lock:
            state = self.store.read_state()
            stack = [v for v in (*state.previous, state.active) if v]
            active = None
            while stack and active is None:
                version = stack.pop()
                active = self._try_load_installed(version)
            shadow = self._try_load_installed(state.shadow) if state.shadow else None
            if active is None and seed is not None:
                active = self._try_install_seed(seed)
            self.engine.set_models(active=active, shadow=shadow)
            self._persist(active=active.version if active else None,
                          shadow=shadow.version if shadow else None, previous=stack)
            return self.versions()

    # -- internals ------------------------------------------------------------------------
    def _check_spec(self, spec: DeploySpec) -> None:
        check_version(spec.version)
        if not _SHA256.match(spec.sha256):
            raise InvalidInput("sha256 must be 64 lower-case hex digits")
        if spec.mode not in MODES:
            raise InvalidInput(f"mode must be one of {MODES}, got {spec.mode!r}")
        if spec.total_size <= 0:
            raise InvalidInput("total_size must be positive")
        if spec.total_size > self.max_model_bytes:
            self._failed("too_large")
            raise TooLarge(f"model of {spec.total_size} bytes exceeds the limit of "
                           f"{self.max_model_bytes}")
        active = self.engine.slots.active
        if spec.mode == "shadow" and active is not None and active.version == spec.version:
            raise PreconditionFailed(f"version {spec.version} is already active")

    def _check_signature(self, spec: DeploySpec) -> Signature | None:
        try:
            return self.verifier.check_upload(spec.sha256, spec.card_json, spec.signing_key_id,
                                              spec.signature)
        except DappError:
            self._failed("signature")
            raise

    def _receive(self, upload: Upload, spec: DeploySpec, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            if len(chunk) > self.max_chunk_bytes:
                self._failed("too_large")
                raise TooLarge(f"chunk of {len(chunk)} bytes exceeds the limit of "
                               f"{self.max_chunk_bytes}")
            if upload.size + len(chunk) > spec.total_size:
                self._failed("size")
                raise InvalidInput(f"received more than total_size={spec.total_size} bytes")
            upload.write(chunk)
        if upload.size != spec.total_size:
            self._failed("size")
            raise InvalidInput(f"received {upload.size} bytes, header said {spec.total_size}")
        digest = upload.hexdigest()
        if digest != spec.sha256:
            self._failed("digest")
            raise PreconditionFailed(f"sha256 mismatch: received {digest}, header {spec.sha256}")

    def _load(self, path: Path, expect_version: str | None = None) -> OnnxRunner:
        """Load and validate a model file; failures raise ``PreconditionFailed``."""
        opts = self.runner_options
        try:
            runner = OnnxRunner(path, opts.intra_threads, opts.inter_threads,
                                task=self.engine.task, max_batch=opts.max_batch)
        except DappError:
            self._failed("unfit")
            raise
        except Exception as err:        # ONNX Runtime raises several types for a bad file
            self._failed("invalid_model")
            raise PreconditionFailed(f"model does not load: {err}") from None
        if expect_version is not None and runner.version != expect_version:
            self._failed("version_mismatch")
            raise PreconditionFailed(f"model metadata version {runner.version!r} != deployed "
                                     f"version {expect_version!r}")
        return runner

    def _load_installed(self, version: str) -> OnnxRunner:
        artifact = self.store.installed(version)
        if artifact is None:
            self._failed("missing")
            raise PreconditionFailed(f"version {version} is not installed")
        self._check_stored(artifact.directory)
        return self._load(artifact.model_path, expect_version=version)

    def _check_stored(self, directory: Path) -> None:
        try:
            self.verifier.check_artifact(directory)
        except DappError:
            self._failed("signature")
            raise

    def _try_load_installed(self, version: str) -> OnnxRunner | None:
        try:
            return self._load_installed(version)
        except DappError as err:
            log.error("cannot restore model %s: %s", version, err)
            return None

    def _try_install_seed(self, seed: Path) -> OnnxRunner | None:
        try:
            return self._install_seed(seed)
        except DappError as err:
            log.error("cannot serve the seed model %s: %s (answering with the fallback)", seed,
                      err)
            return None

    def _install_seed(self, seed: Path) -> OnnxRunner:
        artifact: ModelArtifact = load_artifact(seed)
        self._check_stored(seed)
        runner = self._load(artifact.model_path)
        version = check_version(runner.version)
        if self.store.installed(version) is None:
            self.store.install_copy(artifact, version)
        runner.path = self.store.path(version) / "model.onnx"
        return runner

    def _assign(self, mode: str, runner: OnnxRunner) -> None:
        if mode == "shadow":
            self.engine.set_models(shadow=runner)
            self._persist(active=self._state.active, shadow=runner.version,
                          previous=list(self._state.previous))
            return
        old = self.engine.slots.active
        shadow = self.engine.slots.shadow
        keep_shadow = shadow if shadow is not None and shadow.version != runner.version else None
        self.engine.set_models(active=runner, shadow=keep_shadow)
        self._persist(active=runner.version,
                      shadow=keep_shadow.version if keep_shadow else None,
                      previous=self._pushed(old))

    def _pushed(self, old: OnnxRunner | None) -> list[str]:
        previous = list(self._state.previous)
        if old is not None and (not previous or previous[-1] != old.version):
            previous.append(old.version)
        return previous

    def _persist(self, active: str | None, shadow: str | None, previous: list[str]) -> None:
        self._state = StoreState(active, shadow, [v for v in previous if v != active])
        self.store.write_state(self._state)

    def _failed(self, reason: str) -> None:
        self.engine.metrics.load_failures.labels(reason).inc()
