"""The demo's live timeline: time-stamped events from the xApp's decision log, the DU's status
lines and the dApp's ``GetStatus``, printed as they happen and kept for the summary and plot.

Every printed line starts with the seconds since the demo started (wall clock, monotonic) and the
component it comes from, e.g.::

    [  41.3 s] xapp   DRIFT on cell 00101-000000001: page_hinkley, NMSE -2.1 dB (reference -9.8 dB)

:class:`Recorder` owns the clock, the event list and the NMSE samples; the parsers turn one line
of a child's output into events (``parse_xapp_line``, :class:`DuWatcher`).
"""

from __future__ import annotations

import json
import math
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True)
class Event:
    """Something that happened at ``t_s`` (s since the demo started)."""

    t_s: float
    source: str
    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NmseSample:
    """One model's rolling online NMSE (dB) as the dApp reported it at ``t_s``."""

    t_s: float
    version: str
    role: str
    scored: int
    nmse_db: float


class Recorder:
    """Clock, printer and store of the demo's events and NMSE samples (thread-safe)."""

    def __init__(self, out: TextIO = sys.stdout, clock: Any = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.t0 = clock()
        self.events: list[Event] = []
        self.samples: list[NmseSample] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the demo started."""
        return float(self.clock() - self.t0)

    def say(self, source: str, text: str) -> None:
        """Print one time-stamped line (not recorded as an event)."""
        line = f"[{self.now():7.1f} s] {source:<6} {text}"
        with self._lock:
            print(line, file=self.out, flush=True)

    def emit(self, source: str, kind: str, text: str, **data: Any) -> Event:
        """Record an event of ``kind`` and print it."""
        event = Event(self.now(), source, kind, text, data)
        with self._lock:
            self.events.append(event)
            print(f"[{event.t_s:7.1f} s] {source:<6} {text}", file=self.out, flush=True)
        return event

    def add_samples(self, samples: list[NmseSample]) -> None:
        with self._lock:
            self.samples.extend(samples)

    def first(self, kind: str, after_s: float = -math.inf, **match: Any) -> Event | None:
        """The first event of ``kind`` at or after ``after_s`` whose data has ``match``."""
        with self._lock:
            for event in self.events:
                if event.kind == kind and event.t_s >= after_s and all(
                        event.data.get(k) == v for k, v in match.items()):
                    return event
        return None

    def all(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]


def _db(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):+.1f} dB"


def _describe(event: str, f: dict[str, Any]) -> str | None:
    """Readable text of one xApp decision, None for the ones the timeline leaves out."""
    job = str(f.get("job_id", ""))[-6:]
    texts: dict[str, Any] = {
        "started": lambda: f"xApp up (local E2 node, REST on port {f.get('http_port')})",
        "subscribed": lambda: f"E2 subscription active: {f.get('cell', '')}",
        "drift": lambda: (f"DRIFT on cell {f.get('cell')}: {f.get('detector')}, "
                          f"NMSE {_db(f.get('value'))} (reference {_db(f.get('reference'))}, "
                          f"KPM report #{f.get('report')})"),
        "trigger": lambda: f"policy: launch a re-distillation job for {f.get('group')}",
        "trigger_suppressed": lambda: f"policy: trigger suppressed ({f.get('reason')})",
        "csi_exported": lambda: (f"job {job}: exported {f.get('windows')} windows of recent CSI "
                                 f"from the dApp (data {str(f.get('data_hash', ''))[:12]})"),
        "job_phase": lambda: f"job {job}: {f.get('phase')}",
        "model_registered": lambda: (f"registry: model {f.get('version')} published "
                                     f"(parent {f.get('parent') or 'none'})"),
        "rollout_shadow": lambda: f"rollout: {f.get('version')} in SHADOW on {f.get('dapp')}",
        "rollout_promote": lambda: (f"rollout: PROMOTED {f.get('version')} on {f.get('dapp')}: "
                                    f"shadow {_db(f.get('shadow_nmse_db'))} vs active "
                                    f"{_db(f.get('active_nmse_db'))} (margin "
                                    f"{f.get('margin_db')} dB)"),
        "rollout_discard": lambda: (f"rollout: discarded {f.get('version')}: shadow "
                                    f"{_db(f.get('shadow_nmse_db'))} not better than active "
                                    f"{_db(f.get('active_nmse_db'))} by {f.get('margin_db')} dB"),
        "rollout_rollback": lambda: f"rollout: ROLLED BACK {f.get('version')}",
        "rollout_error": lambda: f"rollout error on {f.get('dapp')}: {f.get('error')}",
        "job_finished": lambda: (f"job {job} finished: {f.get('outcome')}"
                                 + (f", rollout {f.get('rollout')}" if f.get('rollout') else "")
                                 + (f" ({f.get('reason')})" if f.get('reason') else "")),
        "drift_reset": lambda: "drift detectors restart on the new model",
    }
    make = texts.get(event)
    return None if make is None else str(make())


def parse_xapp_line(line: str, recorder: Recorder) -> None:
    """One line of the xApp's output: decisions become events, warnings are printed."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        return  # not a structured log line (e.g. a library's banner): the log file has it
    event = record.get("event")
    if isinstance(event, str):
        text = _describe(event, record)
        if text is not None:
            recorder.emit("xapp", event, text, **{k: v for k, v in record.items()
                                                  if k not in ("ts", "level", "logger")})
        return
    if record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
        fields = {k: v for k, v in record.items() if k not in ("ts", "level", "logger", "msg",
                                                               "exc")}
        recorder.say("xapp", f"{record.get('level')}: {record.get('msg', '')} {fields}")


_DU_LINE = re.compile(r"t=\s*(?P<t>[\d.]+)s phase (?P<phase>\d+) '(?P<label>[^']*)' "
                      r"ues=(?P<ues>\d+) pred/s=\s*(?P<rate>\d+) .*?fallbacks=(?P<fb>\d+) "
                      r"failed_rpcs=(?P<failed>\d+) link=(?P<link>\w+)")
_DU_FINAL = re.compile(r"sent=(?P<sent>\d+) predictions=(?P<pred>\d+) .*fallbacks=(?P<fb>\d+) "
                       r"failed_rpcs=(?P<failed>\d+)")


@dataclass
class DuState:
    """The DU's latest status line: emulated time (s), phase, predictions/s (wall), counters."""

    t_emulated_s: float = 0.0
    phase: int = -1
    label: str = ""
    rate: float = 0.0
    fallbacks: int = 0
    failed_rpcs: int = 0
    link: str = ""


class DuWatcher:
    """Parses the DU's status lines; a phase change becomes a ``phase`` event."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.state = DuState()

    def __call__(self, line: str) -> None:
        match = _DU_LINE.search(line)
        if match is None:
            final = _DU_FINAL.search(line)
            if final is not None:
                self.state.failed_rpcs = int(final["failed"])
                self.state.fallbacks = int(final["fb"])
            elif "error" in line.lower() or "traceback" in line.lower():
                self.recorder.say("du", line.strip())
            return
        s = self.state
        phase = int(match["phase"])
        s.t_emulated_s, s.label, s.rate = float(match["t"]), match["label"], float(match["rate"])
        s.fallbacks, s.failed_rpcs, s.link = int(match["fb"]), int(match["failed"]), match["link"]
        if phase != s.phase:
            s.phase = phase
            what = "stationary phase" if phase == 0 else "SHIFT"
            self.recorder.emit("du", "phase", f"{what}: phase {phase} '{s.label}' "
                                              f"(emulated t={s.t_emulated_s:.2f} s)",
                               phase=phase, label=s.label)
