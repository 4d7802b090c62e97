"""Child processes of ``kdran demo``: started in their own process group, their output read line
by line, and stopped so that nothing survives them.

Each :class:`Child` runs ``argv`` with stdout and stderr merged into one pipe; a reader thread
splits the output on ``\\n`` *and* ``\\r`` (the DU rewrites its status line with ``\\r``), appends
every line to a log file and hands it to a callback. :meth:`Child.stop` sends SIGTERM to the
process group and to every descendant's group (the xApp starts its jobs in new sessions, so a
group signal alone would orphan them), waits, then SIGKILLs whatever is left.

Descendants are found through ``/proc/<pid>/stat`` (Linux): they are collected *before* the
parent is signalled, because an orphan is re-parented and can no longer be traced back.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

LineCallback = Callable[[str], None]



def _parent_of(pid: int) -> int | None:
    """PPID of ``pid`` from ``/proc/<pid>/stat`` (None when the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces: split after it
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[1]) if len(fields) > 1 else None


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid`` (children first), from a scan of ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        kids = children.get(frontier.pop(), [])
        found.extend(kids)
        frontier.extend(kids)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":  # zombie: dead, not reaped
            return False
    return True


def _signal_groups(pids: Sequence[int], sig: int) -> None:
    """Send ``sig`` to the process group of each pid (each group once), and to the pid."""
    groups: set[int] = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _lines(stream: IO[bytes]) -> Iterator[str]:
    """Lines of ``stream`` split on ``\\n`` or ``\\r``, without the separators, empty ones
    dropped. Reads whatever is available (``os.read``), so a status line shows up at once."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while True:
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        pending += decoder.decode(chunk)
        parts = pending.replace("\r", "\n").split("\n")
        pending = parts.pop()
        yield from (p for p in parts if p.strip())
    if pending.strip():
        yield pending


class Child:
    """One child process of the demo (see the module docstring)."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path,
                 on_line: LineCallback, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.on_line = on_line
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> Child:
        """Start the process in a new session (its own process group)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(self.env or {})},
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, name=f"read-{self.name}",
                                        daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("a") as log:
            for line in _lines(self.proc.stdout):
                log.write(line + "\n")
                log.flush()
                try:
                    self.on_line(line)
                except Exception as exc:  # a parser bug must not stop the reader (pipe fills)
                    log.write(f"[demo] line handler failed: {type(exc).__name__}: {exc}\n")

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace_s: float = 5.0) -> list[int]:
        """SIGTERM the child, its group and its descendants' groups; SIGKILL after ``grace_s``.

        Returns the pids that needed SIGKILL. Safe to call twice or on a child that ended.
        """
        if self.proc is None:
            return []
        family = [self.proc.pid, *descendants(self.proc.pid)]
        _signal_groups(family, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            self.proc.poll()
            if not any(_alive(p) for p in family):
                break
            time.sleep(0.05)
        stubborn = [p for p in [*family, *descendants(self.proc.pid)] if _alive(p)]
        if stubborn:
            _signal_groups(stubborn, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2.0)
        if self._reader is not None:
            self._reader.join(2.0)
        return stubborn
