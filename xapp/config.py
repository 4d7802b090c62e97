"""The xApp's typed configuration: the ``controls`` section of ``config-file.json``.

The file is the O-RAN SC xApp descriptor; the xApp reads only its ``controls`` object. Every field
has a documented default, so a partial ``controls`` section is valid. Values of the wrong type are a
``ConfigError`` naming the dotted path; keys this version does not know are returned by
``load_controls`` as warnings (a newer descriptor must not stop an older xApp).

Units are in the field names (``_s`` seconds, ``_ms`` milliseconds, ``_db`` dB).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from xapp.e2.measurements import CHPRED_NMSE_DB_MEAN, KDRAN_MEASUREMENTS

CONFIG_ENV = "CONFIG_FILE"
"""Environment variable naming the descriptor (the RIC mounts it from a ConfigMap)."""


class ConfigError(ValueError):
    """The configuration file is missing, not JSON, or has a value of the wrong type."""


@dataclass(frozen=True)
class E2Node:
    """One E2 node (``meid`` as the RIC's R-NIB names it) and the NR CGIs of its cells."""

    meid: str
    cells: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KpmConfig:
    """The E2SM-KPM REPORT subscription: style, measurement names and periods."""

    report_style: int = 1
    measurements: list[str] = field(default_factory=lambda: list(KDRAN_MEASUREMENTS))
    reporting_period_ms: int = 1000
    granularity_period_ms: int = 1000


@dataclass(frozen=True)
class SubscriptionConfig:
    """How to reach the subscription manager (REST) and when to retry."""

    submgr_url: str = "http://service-ricplt-submgr-http.ricplt:8088/ric/v1"
    retry_interval_s: float = 10.0
    delete_on_shutdown: bool = True
    client_host: str = ""
    """Host the subscription manager posts responses to; "" = ``<pod hostname>``."""


@dataclass(frozen=True)
class E2Config:
    """Which E2 nodes and cells to watch, and the KPM subscription to make."""

    ran_function_id: int = 2
    nodes: list[E2Node] = field(default_factory=list)
    discover_from_rnib: bool = False  # reserved: R-NIB discovery is not implemented
    kpm: KpmConfig = field(default_factory=KpmConfig)
    subscription: SubscriptionConfig = field(default_factory=SubscriptionConfig)


@dataclass(frozen=True)
class PageHinkleyConfig:
    """river ``PageHinkley`` on the per-report NMSE (dB), mode "up" (NMSE getting worse).

    Defaults calibrated with ``kdran bench drift`` (alpha 1): on N(-12 dB, σ) noise no alarm in
    50 000 reports for σ = 0.5 dB and σ = 1 dB; a +6 dB step is detected after 3 reports (median,
    max 4), a +2 dB step after 11.
    """

    delta: float = 0.5
    """Tolerated rise per report, dB."""
    threshold: float = 15.0
    """Cumulative rise (dB) that signals drift."""
    min_instances: int = 30
    alpha: float = 1.0
    """Fading of the cumulative sum; below 1 the sum settles and noise alone crosses the
    threshold after ~1/(1-alpha) reports (0.9999: one false alarm per ~10k reports)."""


@dataclass(frozen=True)
class AdwinConfig:
    """river ``ADWIN`` on the per-report NMSE (dB); only a rise of the mean counts as drift."""

    delta: float = 1e-5
    clock: int = 4
    min_window_length: int = 10
    grace_period: int = 30
    min_rise_db: float = 1.0
    """A detection counts only if the mean of the last ``min_window_length`` reports is this
    much above the reference level (dB); ADWIN itself is two-sided."""


@dataclass(frozen=True)
class GuardConfig:
    """Absolute guards, each must hold for ``persistence_reports`` consecutive reports."""

    baseline_nmse_db: float = -8.0
    """NMSE of the classical (AR/Wiener) baseline on this task, dB."""
    baseline_margin_db: float = 1.0
    """Fire when the model's NMSE is above ``baseline_nmse_db + baseline_margin_db``."""
    fallback_ratio_max: float = 0.2
    """Fire when ``VS.ChPred.Fallback / VS.ChPred.Count`` exceeds this."""
    bler_rise_max: float = 0.05
    """Fire when BLER rose by more than this over its reference *and* NMSE rose too."""
    nmse_rise_db: float = 1.0
    """The NMSE rise (over its reference, dB) that must accompany a BLER rise."""
    reference_window_reports: int = 60
    """Reports averaged into the reference levels of BLER and NMSE."""
    persistence_reports: int = 3


@dataclass(frozen=True)
class DriftConfig:
    """Streaming drift detection per cell (and per UE group for Format 3 reports)."""

    metric: str = CHPRED_NMSE_DB_MEAN
    per_ue_group: bool = True
    page_hinkley: PageHinkleyConfig = field(default_factory=PageHinkleyConfig)
    adwin: AdwinConfig = field(default_factory=AdwinConfig)
    guards: GuardConfig = field(default_factory=GuardConfig)
    clear_after_reports: int = 30
    """A stream leaves the drift state after this many reports with no detector firing."""
    stream_idle_s: float = 600.0
    """A stream not heard from for this long is evicted (its detectors and gauges dropped)."""
    max_streams: int = 50000
    """At most this many streams are tracked; beyond it the least recently heard is evicted."""


@dataclass(frozen=True)
class PolicyConfig:
    """When a drift may launch a job."""

    group_by: str = "e2_node"
    """``e2_node``, ``cell`` or ``ue_group``: the key cooldown and one-job-in-flight apply to."""
    cooldown_s: float = 1800.0
    max_concurrent_jobs: int = 1
    backoff_initial_s: float = 300.0
    backoff_factor: float = 2.0
    backoff_max_s: float = 14400.0
    max_retries: int = 2
    """A failed job (error, deadline) is relaunched after its backoff at most this many times."""
    manual_trigger_enabled: bool = True


@dataclass(frozen=True)
class JobsConfig:
    """Re-distillation jobs (``kdran job run --spec``): where and how they run."""

    launcher: str = "k8s"
    """``k8s`` (a batch/v1 Job) or ``local`` (a subprocess)."""
    image: str = "kdran-distill:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    preset: str = "std"
    teacher: str = ""
    """Base teacher checkpoint, as the job sees it (required by ``kdran job run``)."""
    command: list[str] = field(default_factory=lambda: ["kdran", "job", "run"])
    """The job command; ``--spec <path>`` is appended."""
    namespace: str = ""
    """Kubernetes namespace of the Jobs; "" = the xApp's own (service-account namespace)."""
    service_account: str = ""
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    gpu_count: int = 0
    gpu_resource_name: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    active_deadline_seconds: int = 3600
    backoff_limit: int = 1
    ttl_seconds_after_finished: int = 86400
    recent_csi_max_sequences: int = 4096
    recent_csi_max_age_s: float = 900.0
    recent_csi_min_windows: int = 1
    """Full-length windows the export needs before a job may start."""
    recent_csi_wait_s: float = 120.0
    """How long to keep asking the dApps for enough CSI (UEs that just restarted their history)
    before giving up without counting a job failure."""
    recent_csi_poll_s: float = 5.0
    gates: dict[str, Any] = field(default_factory=dict)
    """Gate thresholds passed verbatim to the job spec ({} = the job's defaults)."""
    require_validated_teacher: bool = True
    """Passed to the job spec: refuse a base teacher without a passing ``kdran teacher validate``
    verdict."""


@dataclass(frozen=True)
class ArtifactStoreConfig:
    """The artifact store: a directory (a PVC mounted at ``path`` in Kubernetes)."""

    path: str = "/var/lib/kdran/artifacts"
    pvc_claim_name: str = ""


@dataclass(frozen=True)
class ModelSigningConfig:
    """Artifact signatures: the key the dApps verify with, and the Secret a job signs with."""

    public_key_file: str = ""
    job_secret_name: str = ""
    """Kubernetes Secret mounted into jobs at ``/var/run/kdran/signing`` ("" = unsigned)."""
    job_secret_key: str = "signing.key"


@dataclass(frozen=True)
class RegistryConfig:
    """The model registry in SDL."""

    backend: str = "sdl"
    sdl_namespace: str = "kdran"


@dataclass(frozen=True)
class RolloutConfig:
    """Shadow → compare → promote, one dApp first (canary)."""

    min_scored_predictions: int = 2000
    promote_margin_db: float = 0.3
    canary_first: bool = True
    shadow_timeout_s: float = 1800.0
    rollback_degradation_db: float = 1.0
    rollback_watch_s: float = 900.0
    poll_interval_s: float = 5.0
    shadow_listing_timeout_s: float = 30.0
    """A freshly deployed shadow missing from ``GetStatus`` counts as 0 scored for this long."""
    resync_interval_s: float = 30.0
    """How often the xApp re-reads every dApp's ``GetStatus`` and reconciles its registry (s);
    a dApp call that succeeds after a failure (reconnect) re-syncs that dApp at once."""


@dataclass(frozen=True)
class TlsConfig:
    """gRPC TLS to the dApps: the CA to trust ("" = system roots), the xApp's own certificate and
    key for mutual TLS (both or neither), the name expected in the server certificate."""

    enabled: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name_override: str = ""


@dataclass(frozen=True)
class DappEndpoint:
    """One dApp's control-plane gRPC address and the E2 node it serves."""

    name: str
    address: str
    e2_node: str = ""
    tls: TlsConfig = field(default_factory=TlsConfig)
    """This dApp's TLS settings; when not ``enabled``, ``dapps.tls`` applies."""

    def tls_for(self, default: TlsConfig) -> TlsConfig:
        """The TLS settings in force for this endpoint."""
        return self.tls if self.tls.enabled else default


@dataclass(frozen=True)
class DappsConfig:
    """The dApps the xApp rolls models out to."""

    endpoints: list[DappEndpoint] = field(default_factory=list)
    rpc_timeout_s: float = 10.0
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True)
class HttpConfig:
    """The xApp's HTTP server: health, metrics, subscription responses, manual trigger/skip
    (the last two need ``Authorization: Bearer <token>``)."""

    host: str = "0.0.0.0"
    port: int = 8080
    token_file: str = ""
    """File holding the bearer token of the state-changing endpoints (a mounted Secret)."""
    token_env: str = ""
    """Environment variable holding that token (used when ``token_file`` is ""). With neither,
    the state-changing endpoints answer 403."""


@dataclass(frozen=True)
class Controls:
    """The whole ``controls`` section."""

    log_level: str = "INFO"
    e2: E2Config = field(default_factory=E2Config)
    drift: DriftConfig = field(default_factory=DriftConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    artifact_store: ArtifactStoreConfig = field(default_factory=ArtifactStoreConfig)
    model_signing: ModelSigningConfig = field(default_factory=ModelSigningConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    dapps: DappsConfig = field(default_factory=DappsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)

    def dapps_for_node(self, meid: str) -> list[DappEndpoint]:
        """dApps serving E2 node ``meid`` (all of them when none names a node)."""
        named = [d for d in self.dapps.endpoints if d.e2_node == meid]
        return named or [d for d in self.dapps.endpoints if not d.e2_node]


T = TypeVar("T")

_CHOICES: dict[str, tuple[str, ...]] = {
    "policy.group_by": ("e2_node", "cell", "ue_group"),
    "jobs.launcher": ("k8s", "local"),
    "registry.backend": ("sdl",),
}


def _convert(kind: Any, value: Any, path: str, unknown: list[str]) -> Any:
    """Check ``value`` against the annotation ``kind`` and build dataclasses recursively."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be an object, got {type(value).__name__}")
        return _build(typing.cast(type, kind), value, path, unknown)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path} must be a list, got {type(value).__name__}")
        (item,) = typing.get_args(kind)
        return [_convert(item, v, f"{path}[{i}]", unknown) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be an object, got {type(value).__name__}")
        _, item = typing.get_args(kind)
        return {str(k): _convert(item, v, f"{path}.{k}", unknown) for k, v in value.items()}
    if kind is Any or origin is types.UnionType:
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return value
    if not isinstance(value, kind):
        raise ConfigError(f"{path} must be {kind.__name__}, got {value!r}")
    return value


def _build(cls: type[T], data: dict[str, Any], path: str, unknown: list[str]) -> T:
    """Instantiate dataclass ``cls`` from ``data``; unknown keys are appended to ``unknown``."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown.extend(f"{path}.{k}".lstrip(".") for k in data if k not in names)
    kwargs = {}
    for key, value in data.items():
        if key in names:
            dotted = f"{path}.{key}".lstrip(".")
            kwargs[key] = _convert(hints[key], value, dotted, unknown)
            if dotted in _CHOICES and kwargs[key] not in _CHOICES[dotted]:
                raise ConfigError(f"{dotted} must be one of {_CHOICES[dotted]}, got {value!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{path or 'controls'}: {exc}") from None


def parse_controls(controls: dict[str, Any]) -> tuple[Controls, list[str]]:
    """Build ``Controls`` from a ``controls`` object; returns it and the unknown dotted keys."""
    unknown: list[str] = []
    return _build(Controls, controls, "", unknown), unknown


def config_path(explicit: str | None) -> Path | None:
    """``explicit`` if given, else ``$CONFIG_FILE``, else None (use the defaults)."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    return Path(chosen) if chosen else None


def load_controls(path: Path | None) -> tuple[Controls, list[str]]:
    """Read the descriptor at ``path`` and parse its ``controls`` (defaults when ``path`` is None).

    Raises ``ConfigError`` naming the file for a missing file, bad JSON or a wrong value.
    """
    if path is None:
        return Controls(), []
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("controls", {}), dict):
        raise ConfigError(f"config file {path}: 'controls' must be an object")
    try:
        return parse_controls(document.get("controls", {}))
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: controls.{exc}") from None
