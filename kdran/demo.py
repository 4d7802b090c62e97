"""``kdran demo``: the embedded closed loop on one machine, narrated live.

1. Prepares (once, cached under ``runs/demo-<preset>/``) a teacher and an initial student that
   know only the stationary conditions (``kdran.demo_prepare``).
2. Starts, each as its own process group on free localhost ports: the dApp serving the initial
   student, the xApp in local mode (embedded E2 node fed by the dApp's status, local job
   launcher, SDL fake backend unless ``--redis``) and the DU emulator streaming the timeline
   (stationary phase, then a shift the student was never trained for).
3. Prints a time-stamped timeline (``kdran.demo_events``) from the xApp's decision log, the DU's
   status and the dApp's ``GetStatus`` (polled every ``run.poll_s``), until the new model has
   been promoted and served for ``run.settle_s`` (or the job failed, or the time limit).
4. Writes ``summary.json``, ``timeline.png``, the model cards and the process logs
   (``kdran.demo_report``) and stops everything: SIGINT/SIGTERM at any point end in the same
   ``finally`` that terminates, then kills, every child and its descendants.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from kdran.demo_config import DEMO_DIR, DemoConfig, DemoConfigError, load_demo_config
from kdran.demo_events import DuWatcher, NmseSample, Recorder, parse_xapp_line
from kdran.demo_prepare import PreparedModels, is_prepared
from kdran.demo_procs import Child
from kdran.net import free_port

_FMT = argparse.ArgumentDefaultsHelpFormatter
READY_TIMEOUT_S = 60.0
_PROGRESS_EVERY_S = 5.0


class DemoStopped(Exception):
    """SIGINT or SIGTERM arrived: unwind to the ``finally`` that stops the children."""


class DemoFailed(Exception):
    """A component could not start or died; the message says which and where its log is."""


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``kdran demo``; ``bench`` is unused."""
    del bench
    demo = commands.add_parser(
        "demo", formatter_class=_FMT,
        help="the embedded closed loop: drift caught, model re-distilled and rolled out",
        description="Run dApp, xApp (local mode) and DU emulator on localhost: a stationary "
                    "phase, then a shift the deployed student was not trained for. Prints a "
                    "live timeline (KPM/NMSE, drift, job phases, shadow, promotion) and writes "
                    "OUT/summary.json, OUT/timeline.png, OUT/cards/ and OUT/logs/. The first "
                    "run prepares the models (minutes; cached under CACHE/demo-<preset>/). "
                    "Default: demo preset (std geometry) with Sionna channels, under 10 "
                    "minutes; --fast: tiny preset with synthetic channels, about a minute. "
                    "Ctrl-C stops every process.")
    demo.add_argument("--fast", action="store_true",
                      help="tiny preset + synthetic channels (demo/fast.json), for CI")
    demo.add_argument("--config", type=Path, default=None,
                      help="demo configuration file (None: demo/fast.json with --fast, else "
                           "demo/full.json)")
    demo.add_argument("--out", type=Path, default=Path("reports/demo"),
                      help="report directory")
    demo.add_argument("--cache", type=Path, default=Path("runs"),
                      help="model cache root (models in CACHE/demo-<preset>/)")
    demo.add_argument("--redis", default=None,
                      help="redis://host:port for the xApp registry (None: SDL fake backend)")
    demo.add_argument("--keep", action="store_true",
                      help="keep the run directory (dApp state, job outputs, xApp config)")
    demo.set_defaults(func=run_demo)


@dataclass
class Session:
    """Everything one demo run owns: its children, directories and the recorder."""

    config: DemoConfig
    args: argparse.Namespace
    recorder: Recorder
    run_dir: Path
    children: list[Child] = field(default_factory=list)
    dapp_address: str = ""
    xapp_url: str = ""
    failed_polls: int = 0
    last_status: Any = None
    initial_version: str = ""

    def child(self, name: str, argv: list[str], on_line: Any,
              env: dict[str, str] | None = None) -> Child:
        """Start ``argv`` as a tracked child logging to ``<out>/logs/<name>.log``."""
        log = self.args.out / "logs" / f"{name}.log"
        log.unlink(missing_ok=True)
        process = Child(name, argv, log, on_line,
                        env={"PYTHONUNBUFFERED": "1", **(env or {})}).start()
        self.children.append(process)
        return process

    def check_alive(self) -> None:
        for process in self.children:
            code = process.returncode()
            if code is not None:
                raise DemoFailed(f"{process.name} exited with code {code}; see "
                                 f"{process.log_path}")

    def stop_all(self) -> None:
        """Stop the children, newest first (DU, xApp with its jobs, dApp)."""
        for process in reversed(self.children):
            killed = process.stop()
            if killed:
                self.recorder.say("demo", f"{process.name}: had to SIGKILL pids {killed}")


def _kdran(*args: str) -> list[str]:
    return [sys.executable, "-m", "kdran.cli", *args]


def _raise_stopped(signum: int, _frame: FrameType | None) -> None:
    raise DemoStopped(signal.Signals(signum).name)


# -- preparation ----------------------------------------------------------------------------------
def prepare_models(session: Session) -> PreparedModels:
    """Reuse the cached models, or build them in a child process with its progress shown."""
    plan = session.config.prepare
    root = session.args.cache / f"demo-{plan.preset}"
    models = PreparedModels.under(root)
    say = session.recorder.say
    if is_prepared(plan, root):
        say("prep", f"using cached models in {root}/ (delete it to prepare again)")
        return models
    say("prep", f"preparing the models once ({plan.preset} preset, {plan.channel} channels, "
                f"{plan.scenario} {plan.speed_kmh[0]:g}-{plan.speed_kmh[1]:g} km/h only); "
                f"cached in {root}/, later runs skip this")
    plan_file = session.run_dir / "prepare-plan.json"
    plan_file.write_text(json.dumps(plan.to_dict(), indent=2))
    last_bar = [0.0]

    def show(line: str) -> None:
        if "%|" in line:  # tqdm progress: one line every few seconds is enough
            if time.monotonic() - last_bar[0] < _PROGRESS_EVERY_S:
                return
            last_bar[0] = time.monotonic()
        say("prep", line.strip())

    began = time.monotonic()
    process = session.child("prepare", [sys.executable, "-m", "kdran.demo_prepare",
                                        "--plan", str(plan_file), "--root", str(root)], show)
    assert process.proc is not None
    code = process.proc.wait()
    session.children.remove(process)
    process.stop()
    if code != 0 or not is_prepared(plan, root):
        raise DemoFailed(f"model preparation failed (exit code {code}); see {process.log_path}")
    say("prep", f"models ready in {time.monotonic() - began:.0f} s")
    return models


# -- the components -------------------------------------------------------------------------------
def _dapp_status(session: Session) -> Any:
    from dapp.client import DappClient

    with DappClient(session.dapp_address, timeout_s=2.0) as client:
        return client.status()


def _wait(what: str, probe: Any, session: Session, timeout_s: float = READY_TIMEOUT_S) -> Any:
    """Call ``probe`` until it returns a value (exceptions mean "not yet")."""
    deadline = time.monotonic() + timeout_s
    while True:
        session.check_alive()
        try:
            return probe()
        except Exception as exc:  # not ready yet: connection refused, 503, ...
            if time.monotonic() > deadline:
                raise DemoFailed(f"{what} not ready after {timeout_s:g} s: {exc}") from None
        time.sleep(0.2)


def start_dapp(session: Session, models: PreparedModels) -> None:
    run = session.config.run
    port, metrics_port = free_port(), free_port()
    session.dapp_address = f"127.0.0.1:{port}"
    session.child("dapp", _kdran(
        "dapp", "serve", "--model", str(models.student_artifact),
        "--listen", session.dapp_address, "--metrics-port", str(metrics_port),
        "--state-dir", str(session.run_dir / "dapp-state"), "--preset", run.preset,
        "--history-capacity", str(run.history_capacity), "--log-level", "WARNING"),
        lambda line: session.recorder.say("dapp", line.strip()))
    status = _wait("dApp", lambda: _dapp_status(session), session)
    session.initial_version = str(status.versions.active)
    session.recorder.emit("dapp", "dapp_ready",
                          f"dApp serving on {session.dapp_address} (metrics :{metrics_port}): "
                          f"ACTIVE {session.initial_version}, preset {status.preset}",
                          version=session.initial_version)


def _http_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as reply:
        return json.loads(reply.read())


def start_xapp(session: Session, models: PreparedModels) -> None:
    port = free_port()
    session.xapp_url = f"http://127.0.0.1:{port}"
    document = session.config.xapp_document(session.dapp_address, session.run_dir / "store",
                                            models.teacher.resolve())
    config_file = session.run_dir / "xapp-config.json"
    config_file.write_text(json.dumps(document, indent=2))
    argv = _kdran("xapp", "run", "--mode", "local", "--config", str(config_file),
                  "--http-port", str(port))
    if session.args.redis:
        argv += ["--redis", session.args.redis]
    session.child("xapp", argv, lambda line: parse_xapp_line(line, session.recorder))
    _wait("xApp", lambda: _http_json(session.xapp_url + "/ric/v1/health/ready"), session)
    backend = f"Redis {session.args.redis}" if session.args.redis else "SDL fake backend"
    session.recorder.emit("xapp", "xapp_ready",
                          f"xApp ready on :{port} (local E2 node, KPM every "
                          f"{session.config.controls['e2']['kpm']['reporting_period_ms']} ms, "
                          f"{backend}, local job launcher)")


def start_du(session: Session, watcher: DuWatcher) -> None:
    run = session.config.run
    session.child("du", _kdran(
        "sim", "du", "--dapp", session.dapp_address, "--ues", str(run.ues),
        "--timeline", str(run.timeline), "--fast", "--channel", run.channel,
        "--preset", run.preset, "--block", str(run.block), "--interval", "0.25"), watcher)
    session.recorder.say("du", f"DU emulator: {run.ues} UEs, {run.channel} channels, timeline "
                               f"{run.timeline.name}, paced as fast as the dApp answers "
                               "(emulated time)")


# -- the live loop --------------------------------------------------------------------------------
def poll_dapp(session: Session) -> None:
    """One ``GetStatus``: record every model's rolling NMSE."""
    try:
        status = _dapp_status(session)
    except Exception as exc:  # counted: a failed RPC is a finding of the demo
        session.failed_polls += 1
        session.recorder.say("demo", f"GetStatus failed: {exc}")
        return
    session.last_status = status
    t = session.recorder.now()
    session.recorder.add_samples([NmseSample(t, m.version, m.role, int(m.scored), m.nmse_db)
                                  for m in status.models if m.scored and m.role != "fallback"])


def _kpm_line(session: Session, du: DuWatcher) -> str:
    """The periodic status line: KPMs the xApp decoded, NMSE per model, DU progress."""
    from prometheus_client.parser import text_string_to_metric_families

    reports, cell_nmse = 0.0, None
    try:
        with urllib.request.urlopen(session.xapp_url + "/metrics", timeout=2.0) as reply:
            text = reply.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "kdran_xapp_kpm_reports_total" and \
                        sample.labels.get("outcome") == "decoded":
                    reports = sample.value
                elif sample.name == "kdran_xapp_cell_nmse_db":
                    cell_nmse = sample.value
    except (OSError, urllib.error.URLError, ValueError):
        pass
    models = []
    status = session.last_status
    if status is not None:
        for m in status.models:
            if m.scored and m.role in ("active", "shadow"):
                models.append(f"{m.role} {m.version[-12:]} {m.nmse_db:+.1f} dB")
    nmse = "n/a" if cell_nmse is None else f"{cell_nmse:+.1f} dB"
    s = du.state
    return (f"KPM reports {int(reports)}, cell NMSE {nmse} | dApp: {', '.join(models) or '-'} "
            f"| DU t={s.t_emulated_s:.2f} s phase {s.phase} {s.rate:.0f} pred/s")


def _finished(session: Session) -> tuple[bool, str]:
    """Whether the story is over: promoted and settled, or the job/rollout ended otherwise."""
    rec, run = session.recorder, session.config.run
    promoted = rec.first("rollout_promote")
    end = rec.first("job_finished")
    if promoted is not None:
        settled = rec.now() - promoted.t_s >= run.settle_s and end is not None
        return settled, "promoted"
    if end is not None and rec.now() - end.t_s >= 2.0:
        return True, f"job ended without a promotion ({end.data.get('outcome')}, rollout "\
                     f"{end.data.get('rollout')})"
    return False, ""


def live_loop(session: Session, du: DuWatcher) -> str:
    """Poll and narrate until the loop closed, a child died or the time limit passed."""
    run = session.config.run
    deadline = session.recorder.now() + run.time_limit_s
    next_line = 0.0
    while True:
        session.check_alive()
        poll_dapp(session)
        if session.recorder.now() >= next_line:
            session.recorder.say("kpm", _kpm_line(session, du))
            next_line = session.recorder.now() + run.status_every_s
        done, why = _finished(session)
        if done:
            return why
        if session.recorder.now() > deadline:
            return f"time limit of {run.time_limit_s:g} s reached"
        time.sleep(run.poll_s)


def _registry(session: Session) -> dict[str, Any]:
    try:
        view: dict[str, Any] = _http_json(session.xapp_url + "/kdran/v1/registry")
        return view
    except (OSError, ValueError) as exc:
        session.recorder.say("demo", f"registry view unavailable: {exc}")
        return {}


def _default_config(args: argparse.Namespace) -> Path:
    return args.config or DEMO_DIR / ("fast.json" if args.fast else "full.json")


def run_demo(args: argparse.Namespace) -> int:
    """Handler of ``kdran demo`` (module docstring); 0 when a new model was promoted."""
    from kdran.demo_report import write_reports

    try:
        config = load_demo_config(_default_config(args))
    except DemoConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    recorder = Recorder()
    run_dir = Path(tempfile.mkdtemp(prefix="kdran-demo-"))
    session = Session(config, args, recorder, run_dir)
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    args.out.mkdir(parents=True, exist_ok=True)
    recorder.say("demo", f"{config.path.name}: {config.description}")
    recorder.say("demo", f"run directory {run_dir} (removed at the end unless --keep); "
                         f"reports in {args.out}/")
    outcome, code, registry = "", 1, {}
    du = DuWatcher(recorder)
    try:
        models = prepare_models(session)
        loop_start = recorder.now()
        start_dapp(session, models)
        start_xapp(session, models)
        start_du(session, du)
        outcome = live_loop(session, du)
        registry = _registry(session)
        code = 0 if outcome == "promoted" else 1
        recorder.say("demo", f"loop finished: {outcome} ({recorder.now() - loop_start:.0f} s "
                             "after the components started); stopping")
    except DemoStopped as exc:
        outcome, code = f"stopped by {exc}", 130
        recorder.say("demo", f"{exc}: stopping every process")
    except DemoFailed as exc:
        outcome = f"failed: {exc}"
        recorder.say("demo", f"FAILED: {exc}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            session.stop_all()
            if session.dapp_address:
                write_reports(session, du, registry, outcome)
        finally:
            if args.keep:
                recorder.say("demo", f"run directory kept: {run_dir}")
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return code
