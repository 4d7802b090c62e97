"""``LocalJobLauncher``: the job as a subprocess of the same command (embedded default).

stdout and stderr are merged and read line by line; ``phase=<name>`` lines drive the callback,
the last ``LOG_TAIL_LINES`` lines are kept for the failure report. The deadline
(``active_deadline_seconds``) is enforced on the whole process group the job leads (it runs in a
session of its own, so children it forks go too): SIGTERM, then SIGKILL to whatever is left after a
grace period.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from xapp.jobs import JobResult, JobSpec, PhaseCallback, parse_phase, read_result

LOG_TAIL_LINES = 200
_KILL_GRACE_S = 5.0


class LocalJobLauncher:
    """Runs ``command + ["--spec", spec_path]`` and waits for it, at most ``deadline_s``."""

    def __init__(self, command: Sequence[str], deadline_s: float,
                 env: dict[str, str] | None = None, kill_grace_s: float = _KILL_GRACE_S) -> None:
        if not command:
            raise ValueError("the job command is empty")
        self.command = list(command)
        self.deadline_s = deadline_s
        self.env = env
        self.kill_grace_s = kill_grace_s
        self._running: dict[str, subprocess.Popen[str]] = {}
        self._lock = threading.Lock()

    def run(self, spec: JobSpec, spec_path: Path, labels: dict[str, str],
            on_phase: PhaseCallback) -> JobResult:
        """Start the job, follow its phases, enforce the deadline; return how it ended."""
        argv = [*self.command, "--spec", str(spec_path)]
        env = {**os.environ, **(self.env or {}),
               **{f"KDRAN_LABEL_{k.upper().replace('-', '_')}": v for k, v in labels.items()}}
        start = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, bufsize=1, env=env, start_new_session=True)
        except OSError as exc:
            return JobResult(spec.job_id, "failed", f"cannot start {argv[0]}: {exc}")
        with self._lock:
            self._running[spec.job_id] = proc
        expired = threading.Event()
        timer = threading.Timer(self.deadline_s, self._expire, (proc, expired))
        timer.daemon = True
        timer.start()
        phases: dict[str, float] = {}
        tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip("\n"))
                phase = parse_phase(line)
                if phase is not None and phase not in phases:
                    phases[phase] = round(time.monotonic() - start, 3)
                    on_phase(phase)
            code = proc.wait()
        finally:
            timer.cancel()
            with self._lock:
                self._running.pop(spec.job_id, None)
        failure = ""
        if code != 0:
            last = tail[-1] if tail else ""
            failure = (f"deadline of {self.deadline_s:g} s exceeded" if expired.is_set()
                       else f"exit code {code}: {last}")
        return read_result(spec, code == 0, phases, "\n".join(tail), failure, exit_code=code)

    def cancel(self, job_id: str) -> None:
        """Terminate the job's process group if it runs."""
        with self._lock:
            proc = self._running.get(job_id)
        if proc is not None:
            self._stop(proc)

    def _expire(self, proc: subprocess.Popen[str], expired: threading.Event) -> None:
        expired.set()
        self._stop(proc)

    def _stop(self, proc: subprocess.Popen[str]) -> None:
        """SIGTERM the process group, wait for its leader at most a grace period, then SIGKILL
        what is left of the group (children that ignore SIGTERM or outlive the leader)."""
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(self.kill_grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
