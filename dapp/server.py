"""Assemble and run a dApp: engine, model store/manager, gRPC server (health, reflection).

Message size and per-client limits: ``dapp.limits`` (set on purpose, see there). Transport
security: ``dapp.tls`` (TLS / mutual TLS on every listening address when configured). Model
signatures: ``dapp.verify`` (public keys from ``ServerConfig.verify_keys``).
"""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from csi.presets import Preset
from dapp.engine import Engine, EngineConfig
from dapp.limits import (
    MAX_CHUNK_BYTES,
    MAX_RECEIVE_BYTES,
    MAX_SEND_BYTES,
    ServiceLimits,
    channel_options,
)
from dapp.manager import ModelManager, RunnerOptions
from dapp.metrics import DappMetrics
from dapp.service import ModelManagerService, PredictorService
from dapp.store import ModelStore
from dapp.tls import ServerTls
from dapp.verify import ModelVerifier
from kdran.v1 import model_manager_pb2, model_manager_pb2_grpc, predictor_pb2, predictor_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = (predictor_pb2.DESCRIPTOR.services_by_name["ChannelPredictor"].full_name,
                 model_manager_pb2.DESCRIPTOR.services_by_name["ModelManager"].full_name)


@dataclass(frozen=True)
class ServerConfig:
    """Where and how to listen. ``listen`` "" = no TCP port; ``uds`` "" = no Unix socket;
    ``tls`` None = plaintext; ``verify_keys`` empty = models need no signature."""

    listen: str = "127.0.0.1:50051"
    uds: str = ""
    max_workers: int = 32
    max_receive_bytes: int = MAX_RECEIVE_BYTES
    max_send_bytes: int = MAX_SEND_BYTES
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    tls: ServerTls | None = None
    verify_keys: tuple[Path, ...] = ()


@dataclass
class DappServer:
    """A running (after ``start``) dApp. ``port`` is the bound TCP port (0 when none)."""

    engine: Engine
    manager: ModelManager
    metrics: DappMetrics
    server: grpc.Server
    health: health.HealthServicer
    port: int = 0
    uds: str = ""
    targets: list[str] = field(default_factory=list)

    def start(self) -> None:
        """Start serving and mark every service SERVING."""
        self.server.start()
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("dApp serving on %s", ", ".join(self.targets))

    def stop(self, grace_s: float | None = 1.0) -> None:
        """Mark NOT_SERVING, stop accepting calls, let running ones finish for ``grace_s``."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        self.engine.close()

    def wait(self) -> None:
        """Block until the server stops."""
        self.server.wait_for_termination()


def build_dapp(preset: Preset, state_dir: Path, seed_model: Path | None = None,
               engine_config: EngineConfig | None = None,
               runner_options: RunnerOptions | None = None,
               server_config: ServerConfig | None = None,
               metrics: DappMetrics | None = None) -> DappServer:
    """Create the engine, restore the last known good model (or ``seed_model``), bind ports."""
    cfg = server_config or ServerConfig()
    runner_options = runner_options or RunnerOptions()
    metrics = metrics or DappMetrics()
    engine = Engine(preset, engine_config, metrics)
    manager = ModelManager(engine, ModelStore(state_dir), runner_options,
                           max_chunk_bytes=min(MAX_CHUNK_BYTES, cfg.max_receive_bytes),
                           verifier=ModelVerifier.from_files(cfg.verify_keys))
    versions = manager.restore(seed_model)
    log.info("models after restore: active=%r shadow=%r", versions.active, versions.shadow)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=cfg.max_workers,
                                                    thread_name_prefix="kdran-dapp"),
                         options=[*channel_options(cfg.max_receive_bytes, cfg.max_send_bytes),
                                  ("grpc.so_reuseport", 0)])
    predictor_pb2_grpc.add_ChannelPredictorServicer_to_server(
        PredictorService(engine, metrics, runner_options.max_batch, cfg.limits), server)
    model_manager_pb2_grpc.add_ModelManagerServicer_to_server(
        ModelManagerService(manager, metrics, cfg.limits), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    dapp = DappServer(engine, manager, metrics, server, health_servicer)
    credentials = cfg.tls.credentials() if cfg.tls is not None else None

    def bind(address: str) -> int:
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)

    if cfg.listen:
        dapp.port = bind(cfg.listen)
        host = cfg.listen.rsplit(":", 1)[0]
        dapp.targets.append(f"{host}:{dapp.port}")
    if cfg.uds:
        Path(cfg.uds).unlink(missing_ok=True)
        bind(f"unix:{cfg.uds}")
        dapp.uds = cfg.uds
        dapp.targets.append(f"unix:{cfg.uds}")
    if not dapp.targets:
        raise ValueError("the dApp needs a TCP listen address or a Unix socket path")
    return dapp
