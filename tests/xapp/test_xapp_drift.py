"""Drift detection on synthetic KPM streams: no false alarm on stationary noise, fast detection
of a step, each guard on its own, one event per detector and episode."""

from __future__ import annotations

import numpy as np

from xapp.config import DriftConfig, GuardConfig
from xapp.drift import (
    ADWIN_DETECTOR,
    BASELINE_GUARD,
    BLER_GUARD,
    FALLBACK_GUARD,
    PAGE_HINKLEY,
    DriftMonitor,
    KpmSample,
    StreamDetector,
    StreamKey,
)
from xapp.drift_bench import StreamShape, run_bench

KEY = StreamKey("gnb-1", "00101-000000001")


def sample(nmse: float, fallbacks: int = 0, errors: int = 100, key: StreamKey = KEY) -> KpmSample:
    return KpmSample(key, nmse, predictions=1000, fallbacks=fallbacks, tb_total=10_000,
                     tb_errors=errors)


def test_defaults_no_false_alarm_and_fast_step_detection() -> None:
    result = run_bench(DriftConfig(), StreamShape(-12.0, 0.5, 6.0), stationary_reports=5000,
                       runs=20, warmup_reports=100, seed=7)
    assert result["false_alarms"] == 0
    assert result["false_alarms_before_step"] == 0
    assert result["missed"] == 0
    assert result["delay_reports"]["max"] <= 4


def test_page_hinkley_with_fading_sum_raises_false_alarms() -> None:
    """Why alpha defaults to 1: a fading sum settles and noise alone crosses the threshold."""
    from xapp.config import PageHinkleyConfig
    fading = DriftConfig(page_hinkley=PageHinkleyConfig(delta=0.1, threshold=8.0, alpha=0.9999))
    result = run_bench(fading, StreamShape(), 20_000, runs=1, warmup_reports=50, seed=0)
    assert result["false_alarms_by_detector"].get(PAGE_HINKLEY, 0) >= 1


def test_improvement_is_not_drift() -> None:
    detector = StreamDetector(KEY, DriftConfig())
    rng = np.random.default_rng(1)
    events = [e for v in rng.normal(-12, 0.5, 300) for e in detector.update(sample(float(v)))]
    events += [e for v in rng.normal(-18, 0.5, 300) for e in detector.update(sample(float(v)))]
    assert events == []


def test_each_detector_fires_once_per_episode_and_episode_clears() -> None:
    config = DriftConfig(clear_after_reports=10)
    detector = StreamDetector(KEY, config)
    rng = np.random.default_rng(2)
    for v in rng.normal(-12, 0.5, 200):
        assert detector.update(sample(float(v))) == []
    shifted = rng.normal(-4, 0.5, 200)
    fired = [e.detector for v in shifted for e in detector.update(sample(float(v)))]
    assert fired.count(PAGE_HINKLEY) == 1 and fired.count(BASELINE_GUARD) == 1
    assert ADWIN_DETECTOR in fired  # the rise is large and lasting: ADWIN sees it too
    assert detector.in_drift  # the baseline guard still holds at -4 dB
    for v in rng.normal(-12, 0.5, 40):
        detector.update(sample(float(v)))
    assert not detector.in_drift


def test_fallback_guard_needs_persistence() -> None:
    detector = StreamDetector(KEY, DriftConfig(guards=GuardConfig(persistence_reports=3)))
    assert detector.update(sample(-12, fallbacks=500)) == []
    assert detector.update(sample(-12, fallbacks=500)) == []
    (event,) = detector.update(sample(-12, fallbacks=500))
    assert event.detector == FALLBACK_GUARD and event.value == 0.5 and event.reference == 0.2


def test_bler_guard_needs_nmse_to_rise_too() -> None:
    guards = GuardConfig(reference_window_reports=20, persistence_reports=2, bler_rise_max=0.05,
                         nmse_rise_db=1.0, baseline_nmse_db=0.0)
    config = DriftConfig(guards=guards)
    link_only = StreamDetector(KEY, config)
    both = StreamDetector(KEY, config)
    for _ in range(30):
        link_only.update(sample(-12.0, errors=100))
        both.update(sample(-12.0, errors=100))
    # BLER 1% -> 10% with NMSE unchanged: a link problem, not a prediction problem.
    assert all(e.detector != BLER_GUARD for _ in range(5)
               for e in link_only.update(sample(-12.0, errors=1000)))
    fired = [e.detector for _ in range(5) for e in both.update(sample(-10.0, errors=1000))]
    assert BLER_GUARD in fired


def test_monitor_keeps_streams_apart_and_resets_by_node() -> None:
    monitor = DriftMonitor(DriftConfig())
    ue_key = StreamKey("gnb-1", "00101-000000001", "gNB-DU-UEID:7")
    other = StreamKey("gnb-2", "00101-000000002")
    for _ in range(50):
        monitor.observe(sample(-12.0))
        monitor.observe(sample(-12.0, key=other))
        monitor.observe(sample(-12.0, key=ue_key))
    events = [e for _ in range(4) for e in monitor.observe(sample(-2.0, key=ue_key))]
    assert events and {e.key for e in events} == {ue_key}
    assert monitor.streams[ue_key].in_drift and not monitor.streams[KEY].in_drift
    assert ue_key.label == "00101-000000001/gNB-DU-UEID:7"
    monitor.reset("gnb-1")
    assert not monitor.streams[ue_key].in_drift
