"""What ``kdran demo`` leaves behind in ``--out`` (default ``reports/demo/``):

- ``summary.json``: the DESIGN.md section 8 keys (times in s since the demo started, NMSE in dB)
  plus extras (detection delay, job wall time, detectors, fallbacks, predictions, versions);
- ``timeline.png``: online NMSE (dB) of every model version over time (solid while active,
  dashed while in shadow), with the shift, the detection, the job and the promotion marked;
- ``cards/<version>.json``: the model card of the initial student and of every model the job
  published;
- ``logs/``: the output of each process (written while they ran).

NMSE values come from the dApp's rolling window (``GetStatus``): *before shift* is the initial
model's value at the last poll before the shift, *after shift* its value at the last poll before
the promotion (by then the window holds post-shift predictions only), *after promotion* the
promoted model's value at the last poll, ``settle_s`` after the promotion.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdran.demo_events import Event, NmseSample, Recorder

if TYPE_CHECKING:
    from kdran.demo import Session
    from kdran.demo_events import DuWatcher

SUMMARY_KEYS = ("shift_at_s", "drift_detected_at_s", "false_alarms", "promoted_version",
                "nmse_db_before_shift", "nmse_db_after_shift", "nmse_db_after_promotion",
                "failed_rpcs")
"""The stable keys of DESIGN.md section 8."""


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def last_nmse(samples: Sequence[NmseSample], version: str, role: str,
              after_s: float = -math.inf, before_s: float = math.inf) -> float | None:
    """The last NMSE (dB) of ``version`` in ``role`` polled in ``[after_s, before_s)``."""
    value = None
    for s in samples:
        if s.version == version and s.role == role and after_s <= s.t_s < before_s \
                and math.isfinite(s.nmse_db):
            value = s.nmse_db
    return value


def _at(event: Event | None) -> float | None:
    return None if event is None else round(event.t_s, 2)


def summarize(recorder: Recorder, initial_version: str, failed_rpcs: int,
              extras: dict[str, Any]) -> dict[str, Any]:
    """The summary object from the recorded events and NMSE samples."""
    shift = recorder.first("phase", phase=1)
    shift_s = shift.t_s if shift is not None else math.inf
    drifts = recorder.all("drift")
    before = {e.data.get("report") for e in drifts if e.t_s < shift_s}
    detected = next((e for e in drifts if e.t_s >= shift_s), None)
    detectors = sorted({str(e.data.get("detector")) for e in drifts
                        if detected is not None and e.data.get("report") ==
                        detected.data.get("report")})
    trigger = recorder.first("trigger", after_s=shift_s)
    published = recorder.first("job_phase", after_s=shift_s, phase="published")
    promoted = recorder.first("rollout_promote")
    finished = recorder.first("job_finished")
    promoted_version = str(promoted.data["version"]) if promoted is not None else None
    promoted_s = promoted.t_s if promoted is not None else math.inf
    samples = recorder.samples
    summary: dict[str, Any] = {
        "shift_at_s": _at(shift),
        "drift_detected_at_s": _at(detected),
        "false_alarms": len(before),
        "promoted_version": promoted_version,
        "nmse_db_before_shift": _round(last_nmse(samples, initial_version, "active",
                                                 before_s=shift_s)),
        "nmse_db_after_shift": _round(last_nmse(samples, initial_version, "active",
                                                after_s=shift_s, before_s=promoted_s)),
        "nmse_db_after_promotion": _round(last_nmse(samples, promoted_version, "active",
                                                    after_s=promoted_s))
        if promoted_version else None,
        "failed_rpcs": failed_rpcs,
    }
    summary.update({
        "detection_delay_s": (round(detected.t_s - shift_s, 2)
                              if detected is not None and shift is not None else None),
        "detectors": detectors,
        "job_started_at_s": _at(trigger),
        "job_published_at_s": _at(published),
        "job_wall_s": (round(published.t_s - trigger.t_s, 1)
                       if published is not None and trigger is not None else None),
        "job_outcome": finished.data.get("outcome") if finished is not None else None,
        "rollout": finished.data.get("rollout") if finished is not None else None,
        "promoted_at_s": _at(promoted),
        "shadow_nmse_db": promoted.data.get("shadow_nmse_db") if promoted else None,
        "initial_version": initial_version,
    })
    summary.update(extras)
    return summary


def plot_timeline(recorder: Recorder, path: Path, title: str) -> None:
    """NMSE per model version over time, events marked (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 6.5), dpi=110)
    versions = list(dict.fromkeys(s.version for s in recorder.samples))
    colors = plt.get_cmap("tab10")
    for index, version in enumerate(versions):
        for role, style in (("active", "-"), ("shadow", "--")):
            points = [(s.t_s, s.nmse_db) for s in recorder.samples
                      if s.version == version and s.role == role and math.isfinite(s.nmse_db)]
            if points:
                t, v = zip(*points, strict=True)
                ax.plot(t, v, style, color=colors(index % 10), linewidth=2,
                        label=f"{version} ({role})")
    _mark_events(ax, recorder)
    ax.set_xlabel("time since the demo started (s, wall clock)")
    ax.set_ylabel("online NMSE (dB, rolling window; lower is better)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8,
                  frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _mark_events(ax: Any, recorder: Recorder) -> None:
    """Vertical lines and a shaded job span, labelled at the top of the axes."""
    shift = recorder.first("phase", phase=1)
    shift_s = shift.t_s if shift is not None else -math.inf
    marks = [("shift", shift, "tab:red"),
             ("drift detected", next((e for e in recorder.all("drift") if e.t_s >= shift_s),
                                     None), "tab:orange"),
             ("published", recorder.first("job_phase", phase="published"), "tab:purple"),
             ("promoted", recorder.first("rollout_promote"), "tab:green")]
    trigger = recorder.first("trigger", after_s=shift_s)
    end = recorder.first("job_phase", phase="published") or recorder.first("job_finished")
    if trigger is not None:
        ax.axvspan(trigger.t_s, end.t_s if end is not None else recorder.now(),
                   color="0.85", alpha=0.6, label="re-distillation job")
    transform = ax.get_xaxis_transform()
    for height, (label, event, color) in zip((0.97, 0.90, 0.97, 0.90), marks, strict=True):
        if event is None:
            continue
        ax.axvline(event.t_s, color=color, linestyle=":", linewidth=1.6)
        ax.text(event.t_s, height, f" {label} {event.t_s:.0f} s", color=color,
                transform=transform, fontsize=9, va="top", ha="left",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})


def copy_cards(registry: dict[str, Any], initial_artifact: Path, out: Path) -> list[str]:
    """Model cards of the initial student and of every registered model into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    sources = [initial_artifact / "card.json"]
    sources += [Path(str(m.get("artifact_dir", ""))) / "card.json"
                for m in registry.get("models", [])]
    written = []
    for card in sources:
        if not card.is_file():
            continue
        version = str(json.loads(card.read_text()).get("version") or card.parent.name)
        shutil.copyfile(card, out / f"{version}.json")
        written.append(version)
    return written


def write_reports(session: Session, du: DuWatcher, registry: dict[str, Any],
                  outcome: str) -> None:
    """Summary, plot and cards into ``session.args.out``; prints the summary."""
    from kdran.demo_prepare import PreparedModels

    out: Path = session.args.out
    config, rec = session.config, session.recorder
    status = session.last_status
    plan = config.prepare
    models = PreparedModels.under(session.args.cache / f"demo-{plan.preset}")
    cards = copy_cards(registry, models.student_artifact, out / "cards")
    extras = {
        "outcome": outcome, "mode": config.path.stem, "preset": config.run.preset,
        "channel": config.run.channel, "ues": config.run.ues,
        "wall_s": round(rec.now(), 1),
        "fallbacks": int(status.fallbacks) if status is not None else None,
        "predictions": int(status.predictions) if status is not None else None,
        "failed_rpcs_du": du.state.failed_rpcs, "failed_status_polls": session.failed_polls,
        "cards": cards,
    }
    summary = summarize(rec, session.initial_version, du.state.failed_rpcs + session.failed_polls,
                        extras)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_timeline(rec, out / "timeline.png",
                  f"kdran demo ({config.path.stem}): {config.run.preset} preset, "
                  f"{config.run.channel} channels, {config.run.ues} UEs")
    print_summary(rec, summary, out)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def print_summary(rec: Recorder, s: dict[str, Any], out: Path) -> None:
    """The closing summary, a few aligned lines."""
    rows = [
        ("outcome", s["outcome"]),
        ("shift at", _fmt(s["shift_at_s"], " s")),
        ("drift detected at", f"{_fmt(s['drift_detected_at_s'], ' s')} (delay "
                              f"{_fmt(s['detection_delay_s'], ' s')}, "
                              f"{', '.join(s['detectors']) or '-'})"),
        ("false alarms", _fmt(s["false_alarms"])),
        ("job wall time", f"{_fmt(s['job_wall_s'], ' s')} (outcome {_fmt(s['job_outcome'])}, "
                          f"rollout {_fmt(s['rollout'])})"),
        ("promoted version", _fmt(s["promoted_version"])),
        ("NMSE before shift", _fmt(s["nmse_db_before_shift"], " dB")),
        ("NMSE after shift", _fmt(s["nmse_db_after_shift"], " dB")),
        ("NMSE after promotion", _fmt(s["nmse_db_after_promotion"], " dB")),
        ("fallbacks", _fmt(s["fallbacks"])),
        ("failed RPCs", _fmt(s["failed_rpcs"])),
    ]
    rec.say("demo", "summary")
    for name, value in rows:
        print(f"    {name:<22} {value}", flush=True)
    print(f"    {'reports':<22} {out}/summary.json, timeline.png, cards/, logs/", flush=True)
