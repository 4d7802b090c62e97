"""Engine in-process: fallback reasons, shadow isolation, late shadow scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from dapp_helpers import BUILDERS, doppler_channels

from csi.metrics import nmse_db
from csi.predictors import ArWiener
from csi.presets import TINY
from dapp.engine import Engine, EngineConfig
from dapp.messages import Observation
from dapp.runner import OnnxRunner


def _runner(tmp_path: Path, kind: str, version: str) -> OnnxRunner:
    path = tmp_path / f"{version}.onnx"
    onnx.save(BUILDERS[kind](TINY, version), path)
    return OnnxRunner(path)


def _stream(engine: Engine, h: np.ndarray, ue: str = "u") -> list:
    answers = engine.observe([Observation(ue, 0, history=h[:1])])
    for t in range(1, h.shape[0]):
        answers += engine.observe([Observation(ue, t, srs=h[t])])
    return answers


def test_no_model_answers_with_ar_fallback() -> None:
    engine = Engine(TINY)
    h = doppler_channels(1, TINY.history + 3)[0]
    answers = _stream(engine, h)
    assert [a.ready for a in answers] == [False] * (TINY.history - 1) + [True] * 4
    last = answers[-1]
    assert last.fallback_reason == "no_model" and last.model_version == ""
    expected = ArWiener().predict(h[None, -TINY.history:], TINY.horizon)[0]
    # same AR fit; BLAS rounding depends on buffer alignment, so compare to NMSE < -50 dB
    assert nmse_db(last.future[None], expected[None]) < -50
    assert engine.status().fallbacks["no_model"] == 4
    engine.close()


def test_model_error_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(TINY)
    runner = _runner(tmp_path, "linear", "lin-1")
    engine.set_models(active=runner)

    def broken(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise RuntimeError("simulated ORT failure")

    monkeypatch.setattr(runner, "predict_with_beams", broken)
    answer = engine.predict(doppler_channels(1, TINY.history)[0])
    assert answer.fallback_reason == "model_error" and answer.future is not None
    assert engine.status().fallbacks["model_error"] == 1
    engine.close()


def test_deadline_falls_back(tmp_path: Path) -> None:
    engine = Engine(TINY, EngineConfig(deadline_us=1.0))       # nothing fits in 1 µs
    engine.set_models(active=_runner(tmp_path, "linear", "lin-1"))
    answer = engine.predict(doppler_channels(1, TINY.history)[0])
    assert answer.fallback_reason == "deadline"
    relaxed = Engine(TINY, EngineConfig(deadline_us=5e6))
    relaxed.set_models(active=_runner(tmp_path, "linear", "lin-1"))
    assert relaxed.predict(doppler_channels(1, TINY.history)[0]).fallback_reason is None
    engine.close()
    relaxed.close()


def test_shadow_is_scored_never_served(tmp_path: Path) -> None:
    engine = Engine(TINY)
    engine.set_models(active=_runner(tmp_path, "linear", "lin-1"),
                      shadow=_runner(tmp_path, "outdated", "out-2"))
    h = doppler_channels(1, 30)[0]
    answers = _stream(engine, h)
    assert {a.model_version for a in answers if a.ready} == {"lin-1"}
    engine.wait_background()
    tracks = {t.version: t for t in engine.status().tracks}
    assert tracks["out-2"].role == "shadow" and tracks["lin-1"].role == "active"
    ready = sum(a.ready for a in answers)
    assert tracks["out-2"].nmse.predictions == tracks["lin-1"].nmse.predictions == ready
    assert tracks["out-2"].nmse.scored == tracks["lin-1"].nmse.scored > 0
    # the outdated-CSI graph is worse than linear extrapolation on a slow Doppler channel
    assert tracks["out-2"].nmse.nmse_db > tracks["lin-1"].nmse.nmse_db
    engine.close()
