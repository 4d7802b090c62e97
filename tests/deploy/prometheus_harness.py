"""Fixtures of the real-Prometheus dashboard test: processes, a Prometheus server, Grafana's
variable interpolation, dApp traffic, and the re-distillation job double the xApp launches.

- ``Processes``: children started in their own process group and always reaped (SIGTERM, then
  SIGKILL after a grace period), so a failing test leaves no orphans.
- ``PrometheusServer``: ``/usr/bin/prometheus`` on a free localhost port with a temporary config
  and TSDB directory; ``query`` / ``query_range`` go through the HTTP API.
- ``GrafanaSelection``: a concrete dashboard selection and the substitution Grafana's Prometheus
  data source performs (regex-escaped values of multi/All variables, built-in intervals).
- ``Traffic``: UEs streaming synthetic SRS estimates (``csi.synthetic``) to a dApp over one
  ``Observe`` stream, paced (10 ms per occasion) so two shared CPU cores are not saturated.
- Run as a script (``python prometheus_harness.py --spec spec.json``) it is the job the xApp's
  local launcher starts: it reads the job spec, prints the ``phase=`` lines and publishes a real
  ONNX artifact (``dapp.onnx_models.linear_model``) the dApp can load as a shadow model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from kdran.net import free_port

PROMETHEUS_BINARY = Path("/usr/bin/prometheus")
INSTALL_HINT = "apt-get install prometheus (the Debian package provides /usr/bin/prometheus)"
T = TypeVar("T")



def wait_until(fn: Callable[[], T], ok: Callable[[T], bool], timeout_s: float, what: str,
               interval_s: float = 0.2) -> T:
    """Poll ``fn`` until ``ok(result)``; raise ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout_s} s (last: {value!r})")
        time.sleep(interval_s)


@dataclass
class Processes:
    """Child processes, each in its own session (process group), stopped by ``stop_all``."""

    log_dir: Path
    children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        """Start ``argv`` with stdout/stderr to ``<log_dir>/<name>.log``."""
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        self.children.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        """Fail with the child's log tail when one of them has exited."""
        for name, proc, _ in self.children:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        """The last ``chars`` characters of a child's log."""
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop_all(self, grace_s: float = 5.0) -> None:
        """SIGTERM each child's process group (newest first), SIGKILL what outlives the grace."""
        for _, proc, _ in reversed(self.children):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for _, proc, log in reversed(self.children):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)
            _signal_group(proc, signal.SIGKILL)   # children the leader left behind (job runs)
            log.close()
        self.children.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):   # the whole group has exited already
        os.killpg(proc.pid, sig)


@dataclass(frozen=True)
class ScrapeTarget:
    """One static scrape job: ``host:port`` and the target labels service discovery would add."""

    job: str
    address: str
    labels: Mapping[str, str]


class PrometheusServer:
    """A real Prometheus scraping ``targets`` every ``scrape_interval_s``."""

    def __init__(self, processes: Processes, workdir: Path, targets: Sequence[ScrapeTarget],
                 scrape_interval_s: float = 1.0) -> None:
        if not PROMETHEUS_BINARY.is_file():
            raise FileNotFoundError(f"{PROMETHEUS_BINARY} is missing: {INSTALL_HINT}")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        interval = f"{scrape_interval_s:g}s"
        config.write_text(json.dumps({   # JSON is YAML; Prometheus reads it as its config
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{"job_name": t.job, "scrape_interval": interval,
                                "static_configs": [{"targets": [t.address],
                                                    "labels": dict(t.labels)}]}
                               for t in targets]}))
        processes.start("prometheus", [
            str(PROMETHEUS_BINARY), f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"])
        wait_until(self._ready, bool, 30.0, "Prometheus /-/ready")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    def api(self, endpoint: str, **params: str) -> dict[str, Any]:
        """GET ``/api/v1/<endpoint>``; the decoded JSON body (errors too: status "error")."""
        url = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                body: dict[str, Any] = json.loads(reply.read())
        except urllib.error.HTTPError as exc:   # 400/422: PromQL error in the body
            body = json.loads(exc.read())
        return body

    def query(self, expr: str, at: float) -> dict[str, Any]:
        """Instant query at Unix time ``at`` (s)."""
        return self.api("query", query=expr, time=f"{at:.3f}")

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> dict[str, Any]:
        """Range query over ``[start, end]`` (Unix s) every ``step_s`` seconds."""
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
                        step=f"{step_s:g}")

    def series_count(self, expr: str) -> int:
        """Number of series an instant query returns now (0 on error)."""
        body = self.query(expr, time.time())
        return len(body["data"]["result"]) if body.get("status") == "success" else 0

    def targets_up(self) -> int:
        """Active scrape targets whose last scrape succeeded."""
        active = self.api("targets").get("data", {}).get("activeTargets", [])
        return sum(1 for t in active if t.get("health") == "up")


_REGEX_META = re.compile(r"[$^*{}\[\]'+?.()|]")


def prometheus_regex_escape(value: str) -> str:
    """Grafana's escape of a multi/All variable value for a PromQL regex matcher: each regex
    metacharacter gets a backslash, written doubled inside the PromQL string literal."""
    return _REGEX_META.sub(lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


@dataclass(frozen=True)
class GrafanaSelection:
    """What a user picked on a dashboard, and the built-in intervals Grafana derives.

    ``values`` maps a variable name to the selected values (every dashboard variable here is
    multi-select with All). Grafana interpolates one value as its regex-escaped self and several
    as ``(v1|v2)``. ``$__interval`` is the range divided by the panel's data points, at least the
    data source's scrape interval; ``$__rate_interval`` is
    ``max($__interval + scrape interval, 4 x scrape interval)``.
    """

    values: Mapping[str, Sequence[str]]
    range_s: float
    scrape_interval_s: float
    max_data_points: int = 1000

    @property
    def interval_s(self) -> float:
        return max(self.scrape_interval_s, self.range_s / self.max_data_points)

    @property
    def rate_interval_s(self) -> float:
        return max(self.interval_s + self.scrape_interval_s, 4 * self.scrape_interval_s)

    def builtins(self) -> dict[str, str]:
        """Built-in variables as PromQL durations (whole seconds, rounded up)."""
        def seconds(value: float) -> str:
            return f"{int(-(-value // 1))}s"
        return {"__rate_interval": seconds(self.rate_interval_s),
                "__interval": seconds(self.interval_s), "__range": seconds(self.range_s)}

    def interpolate(self, expr: str) -> str:
        """``expr`` with ``$name`` / ``${name}`` replaced; an unknown variable is an error."""
        builtins = self.builtins()

        def replace(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name in builtins:
                return builtins[name]
            if name not in self.values:
                raise KeyError(f"no selection for dashboard variable ${name} in {expr!r}")
            escaped = [prometheus_regex_escape(v) for v in self.values[name]]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


class Traffic:
    """``n_ues`` UEs of one cell streaming SRS estimates ``[antenna, rb]`` to a dApp.

    Channels are ``csi.synthetic`` multipath at ``speed_kmh``, ``steps`` occasions per drop;
    each drop starts with a ``history`` message, then one delta per occasion every
    ``period_s`` seconds (wall clock). The default drop (60 s) outlasts a test, so the dApp's
    recent CSI always holds whole windows when the xApp exports it for a job. Runs in a daemon
    thread until ``stop``.
    """

    def __init__(self, target: str, cell: str, n_ues: int = 4, steps: int = 6000,
                 speed_kmh: float = 30.0, period_s: float = 0.01) -> None:
        self.target, self.cell, self.n_ues, self.steps = target, cell, n_ues, steps
        self.speed_kmh, self.period_s = speed_kmh, period_s
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded, name="traffic", daemon=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:   # surfaced by the test through ``error``
            if not self._stop.is_set():
                self.error = exc

    def _run(self) -> None:
        from csi.presets import TINY
        from csi.synthetic import multipath_channels
        from dapp.client import DappClient
        from dapp.messages import Observation

        ues = [f"ue-{i}" for i in range(self.n_ues)]
        slot, drop = 0, 0
        with DappClient(self.target) as client, client.open_stream() as stream:
            while not self._stop.is_set():
                h = multipath_channels(TINY, self.n_ues, self.speed_kmh, n_paths=4,
                                       steps=self.steps, seed=drop)    # [ue, time, ant, rb]
                start = TINY.history
                for i, ue in enumerate(ues):
                    stream.send(Observation(ue, slot + start - 1, history=h[i, :start],
                                            group=self.cell))
                for t in range(start, self.steps):
                    if self._stop.wait(self.period_s):
                        return
                    for i, ue in enumerate(ues):
                        stream.send(Observation(ue, slot + t, srs=h[i, t]))
                        self.sent += 1
                slot, drop = slot + self.steps, drop + 1


# -- the re-distillation job double (run as a script by the xApp's LocalJobLauncher) ------------

def publish_model(directory: Path, kind: str, preset_name: str, version: str,
                  **card: Any) -> Path:
    """An artifact directory (``model.onnx``, ``card.json``, ``SHA256SUMS``) holding a
    ``dapp.onnx_models`` model: ``kind`` "linear" or "outdated"."""
    import onnx

    from csi.presets import get_preset
    from dapp.artifact import write_artifact
    from dapp.onnx_models import linear_model, outdated_model

    builders = {"linear": linear_model, "outdated": outdated_model}
    preset = get_preset(preset_name)
    directory.mkdir(parents=True)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".onnx", delete=False) as f:
        onnx.save(builders[kind](preset, version), f.name)
    write_artifact(directory, Path(f.name),
                   {"version": version, "kind": kind, "preset": preset.name, **card})
    return directory


def run_job(spec_path: Path) -> int:
    """Publish a linear-extrapolation model for the spec's data: the job contract of
    ``xapp.jobs`` (phase lines, ``result.json``, ``artifact/`` with a loadable ONNX model)."""
    from csi.dataset import ChannelSet

    spec = json.loads(spec_path.read_text())
    out = Path(spec["output_dir"])
    data = ChannelSet.load(Path(spec["data_dir"]))
    for phase in ("adapting", "distilling", "pruning", "exporting", "quantizing", "gates"):
        print(f"phase={phase}", flush=True)
    version = f"kd-{data.content_hash()[:10]}"
    artifact = publish_model(out / "artifact", "linear", spec["preset"], version,
                             data_hash=data.content_hash(), n_train=len(data))
    gates = [{"name": "retention", "passed": True, "value": 1.0, "threshold": 0.98,
              "reason": ""}]
    (out / "result.json").write_text(json.dumps({"ok": True, "reason": "",
                                                 "artifact": str(artifact), "gates": gates}))
    print("phase=published", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Job double: publish a linear ONNX model.")
    parser.add_argument("--spec", type=Path, required=True, help="job spec.json")
    return run_job(parser.parse_args(argv).spec)


if __name__ == "__main__":
    sys.exit(main())
