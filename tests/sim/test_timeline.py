"""Scenario timeline files: the shipped examples load, bad documents get clear errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sim.timeline import TimelineError, load_timeline, parse_timeline

TIMELINES = Path(__file__).resolve().parents[2] / "sim" / "timelines"


def _doc() -> dict[str, Any]:
    return {"name": "t", "phases": [
        {"start_s": 0, "groups": [{"scenario": "UMa", "speed_kmh": 30}]},
        {"start_s": 10, "groups": [{"share": 3, "scenario": "UMi", "speed_kmh": [100, 120]},
                                   {"share": 1, "scenario": "CDL-D", "speed_kmh": 5,
                                    "carrier_hz": 28e9}]}]}


def test_speed_shift_example() -> None:
    timeline = load_timeline(TIMELINES / "speed-shift.json")
    assert [p.start_s for p in timeline.phases] == [0.0, 60.0]
    assert timeline.phase_at(59.999).groups[0].speed_kmh == (30.0, 30.0)
    assert timeline.phase_at(60.0).groups[0].speed_kmh == (150.0, 150.0)
    assert {s.scenario for s in timeline.settings(1, 16)} == {"UMa"}
    assert timeline.end_s is None


@pytest.mark.parametrize("path", sorted(TIMELINES.glob("*.json")), ids=lambda p: p.stem)
def test_every_shipped_timeline_is_valid(path: Path) -> None:
    assert load_timeline(path).phases


def test_settings_split_ues_by_share_and_draw_speeds_in_range() -> None:
    timeline = parse_timeline(_doc())
    settings = timeline.settings(1, 10, seed=7)
    assert [s.scenario for s in settings] == ["UMi"] * 8 + ["CDL-D"] * 2  # 7.5 + 2.5 -> 8 + 2
    assert all(100 <= s.speed_kmh <= 120 for s in settings[:8])
    assert settings[8].carrier_hz == 28e9 and settings[0].carrier_hz is None
    assert settings == timeline.settings(1, 10, seed=7)
    assert settings != timeline.settings(1, 10, seed=8)


def _broken(edit: str) -> dict[str, Any]:
    doc = copy.deepcopy(_doc())
    phases = doc["phases"]
    if edit == "unknown scenario":
        phases[0]["groups"][0]["scenario"] = "Moon"
    elif edit == "negative speed":
        phases[1]["groups"][0]["speed_kmh"] = [-5, 10]
    elif edit == "reversed speed":
        phases[1]["groups"][0]["speed_kmh"] = [120, 100]
    elif edit == "unsorted":
        phases.append({"start_s": 5, "groups": [{"scenario": "UMa", "speed_kmh": 1}]})
    elif edit == "duplicate start":
        phases[1]["start_s"] = 0
    elif edit == "overlap":
        phases[0]["end_s"] = 12
    elif edit == "gap":
        phases[0]["end_s"] = 8
    elif edit == "late first phase":
        phases[0]["start_s"] = 1
    elif edit == "unknown key":
        phases[0]["groups"][0]["speed"] = 3
    elif edit == "zero share":
        phases[1]["groups"][0]["share"] = 0
    elif edit == "no groups":
        phases[1]["groups"] = []
    elif edit == "end before start":
        phases[1]["end_s"] = 5
    elif edit == "string speed":
        phases[0]["groups"][0]["speed_kmh"] = "fast"
    return doc


@pytest.mark.parametrize(("edit", "message"), [
    ("unknown scenario", "unknown scenario 'Moon'"),
    ("negative speed", "must be non-negative"),
    ("reversed speed", "is reversed"),
    ("unsorted", "must be sorted"),
    ("duplicate start", "must not overlap"),
    ("overlap", "overlaps the next phase"),
    ("gap", "leaves a gap"),
    ("late first phase", "must start at 0"),
    ("unknown key", "unknown keys ['speed']"),
    ("zero share", "share must be positive"),
    ("no groups", "groups must be a non-empty list"),
    ("end before start", "not after its start"),
    ("string speed", "must be a finite number"),
])
def test_validation_errors_name_the_problem(edit: str, message: str) -> None:
    with pytest.raises(TimelineError, match="phases") as info:
        parse_timeline(_broken(edit))
    assert message in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TimelineError, match="cannot read timeline"):
        load_timeline(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TimelineError, match="not valid JSON"):
        load_timeline(bad)
    bad.write_text(json.dumps(_broken("negative speed")))
    with pytest.raises(TimelineError, match=r"bad\.json: phases\[1\]\.groups\[0\]\.speed_kmh"):
        load_timeline(bad)
