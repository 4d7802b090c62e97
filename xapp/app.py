"""Assembly of the xApp from its configuration: registry, launcher, controller, HTTP server,
config reload. Transport-specific parts (RMR in ``xapp.ric``, in-process in ``xapp.local``)
plug in through ``XappApp.subscriptions_ready``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xapp.config import ConfigError, Controls, DappEndpoint, TlsConfig, load_controls
from xapp.controller import Controller, DappHandle
from xapp.jobs import JobLauncher
from xapp.launch_local import LocalJobLauncher
from xapp.logs import decision
from xapp.metrics import XappMetrics
from xapp.registry import Registry, open_sdl
from xapp.rest import RestServer, SubscriptionCallback

log = logging.getLogger("kdran.xapp.app")


def build_launcher(controls: Controls) -> JobLauncher:
    """The configured launcher (``jobs.launcher``)."""
    jobs = controls.jobs
    if jobs.launcher == "local":
        return LocalJobLauncher(jobs.command, jobs.active_deadline_seconds)
    from xapp.launch_k8s import KubernetesJobLauncher
    return KubernetesJobLauncher(jobs, controls.artifact_store, controls.model_signing)


def client_tls(tls: TlsConfig) -> Any:
    """``dapp.client.ClientTls`` for ``tls`` (None when TLS is off)."""
    if not tls.enabled:
        return None
    from dapp.client import ClientTls

    def path(value: str) -> Path | None:
        return Path(value) if value else None

    return ClientTls(ca=path(tls.ca_file), cert=path(tls.cert_file), key=path(tls.key_file),
                     server_name=tls.server_name_override)


def grpc_dapp_factory(timeout_s: float,
                      default_tls: TlsConfig | None = None) -> Callable[[DappEndpoint], DappHandle]:
    """``DappClient`` per endpoint with its TLS settings (``endpoint.tls``, else ``default_tls``);
    imported lazily: gRPC stubs are not needed to import xapp."""

    def factory(endpoint: DappEndpoint) -> DappHandle:
        from dapp.client import DappClient
        tls = client_tls(endpoint.tls_for(default_tls or TlsConfig()))
        client: DappHandle = DappClient(endpoint.address, timeout_s=timeout_s,  # type: ignore[assignment]
                                        tls=tls)
        return client

    return factory


class ConfigWatcher:
    """Polls the descriptor's modification time; on a change, reloads and applies ``controls``.

    A file that no longer parses is logged and ignored (the running configuration stays).
    """

    def __init__(self, path: Path, apply: Callable[[Controls], None],
                 interval_s: float = 2.0) -> None:
        self.path, self.apply, self.interval_s = path, apply, interval_s
        self._stamp = self._mtime()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-watch", daemon=True)

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime_ns / 1e9
        except OSError:
            return 0.0

    def start(self) -> ConfigWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """Reload if the file changed; True when a new configuration was applied."""
        stamp = self._mtime()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            controls, unknown = load_controls(self.path)
        except ConfigError as exc:
            decision("config_rejected", level=logging.WARNING, error=str(exc))
            return False
        if unknown:
            decision("config_unknown_keys", level=logging.WARNING, keys=unknown)
        self.apply(controls)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()


class XappApp:
    """The assembled xApp. ``ready`` needs the registry and at least one active subscription."""

    def __init__(self, controls: Controls, config_file: Path | None, redis_url: str | None = None,
                 launcher: JobLauncher | None = None,
                 dapp_factory: Callable[[DappEndpoint], DappHandle] | None = None,
                 http_port: int | None = None) -> None:
        self.controls = controls
        self.metrics = XappMetrics()
        self.registry = Registry.open(open_sdl(redis_url), controls.registry.sdl_namespace)
        self.controller = Controller(
            controls, self.registry, launcher or build_launcher(controls),
            dapp_factory or grpc_dapp_factory(controls.dapps.rpc_timeout_s, controls.dapps.tls),
            self.metrics)
        self.controller.resume()
        self.on_subscription_response: SubscriptionCallback = lambda body: None
        port = controls.http.port if http_port is None else http_port
        self.rest = RestServer(self.controller, controls.http.host, port, self.ready,
                               lambda body: self.on_subscription_response(body))
        self.watcher = ConfigWatcher(config_file, self.controller.reconfigure) \
            if config_file else None

    def ready(self) -> tuple[bool, str]:
        if not self.registry.healthy():
            return False, f"registry unreachable ({self.registry.pending} writes queued)"
        if len(self.controller.subscriptions) == 0:
            return False, "no active E2 subscription"
        return True, ""

    def start(self) -> XappApp:
        self.rest.start()
        self.controller.start_resync()
        if self.watcher is not None:
            self.watcher.start()
        decision("started", http_port=self.rest.port)
        return self

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.rest.stop()
        self.controller.close()
        self.registry.flush()
        decision("stopped")
