"""Engine in-process: fallback reasons, shadow isolation, late shadow scoring."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from dapp_helpers import BUILDERS, doppler_channels

from csi.metrics import nmse_db
from csi.predictors import ArWiener
from csi.presets import TINY
from dapp.engine import Engine, EngineConfig
from dapp.errors import InvalidInput, TooLarge
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


def test_batch_with_warming_up_ues_answers_the_ready_ones(tmp_path: Path) -> None:
    """Only UEs with a full window go to the model; their rows match one-UE messages."""
    engine = Engine(TINY)
    engine.set_models(active=_runner(tmp_path, "linear", "lin-1"))
    h = doppler_channels(4, TINY.history + 1, seed=3)
    t = TINY.history - 1
    answers = engine.observe([Observation("cold", t, history=h[0, t:t + 1]),
                              Observation("warm", t, history=h[1, :t + 1]),
                              Observation("also-cold", 0, history=h[2, :1]),
                              Observation("warm-2", t, history=h[3, :t + 1])])
    assert [a.ready for a in answers] == [False, True, False, True]
    top_scores = []
    for i in (1, 3):                        # each row ranked on its own beam scores
        alone = engine.observe([Observation(f"alone-{i}", t, history=h[i, :t + 1])])[0]
        got = answers[i]
        assert got.future is not None and got.top_scores is not None
        assert alone.future is not None and alone.top_scores is not None
        np.testing.assert_allclose(got.future, alone.future, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got.top_beams, alone.top_beams)
        np.testing.assert_allclose(got.top_scores, alone.top_scores, rtol=1e-5)
        top_scores.append(got.top_scores)
    assert not np.array_equal(top_scores[0], top_scores[1])
    nxt = engine.observe([Observation("warm", t + 1, srs=h[1, t + 1]),
                          Observation("cold", t + 1, srs=h[0, t + 1])])
    assert [a.ready for a in nxt] == [True, False]
    engine.close()


def test_finiteness_check_refuses_nan_inf_not_huge_values() -> None:
    """The fast check (one dot product, exact check when it overflows) decides like
    ``np.isfinite(x).all()``, for contiguous and strided inputs."""
    engine = Engine(TINY)                   # warming-up UEs: validated, no model run
    h = doppler_channels(1, 4)[0]
    huge = (h * np.float32(1e30)).astype(np.complex64)            # |x|^2 overflows float32
    assert not np.isfinite(np.vdot(huge, huge)) and np.isfinite(huge).all()
    assert not engine.observe([Observation("big", 1, history=huge[:2])])[0].ready
    strided = np.asfortranarray(huge[2])                          # not C-contiguous
    assert not strided.flags.c_contiguous
    assert not engine.observe([Observation("big", 2, srs=strided)])[0].ready
    for bad in (complex(np.nan, 0), complex(0, np.inf), complex(-np.inf, np.nan)):
        srs = h[3].copy()
        srs[1, 2] = bad
        with pytest.raises(InvalidInput, match="NaN or Inf"):
            engine.observe([Observation("big", 3, srs=srs)])
        with pytest.raises(InvalidInput, match="NaN or Inf"):
            engine.predict(np.where(np.arange(4)[:, None, None] == 2, bad, h))
    assert engine.history.get("big").slot == 2             # the refused SRS changed nothing
    engine.close()


def test_observe_deferred_queues_background_work_when_asked(tmp_path: Path) -> None:
    """Scoring and the shadow run of a message wait for ``background()``; a message that fails
    midway still has what it ingested scored."""
    engine = Engine(TINY, EngineConfig(max_ues=1))
    engine.set_models(active=_runner(tmp_path, "linear", "lin-1"),
                      shadow=_runner(tmp_path, "outdated", "out-2"))
    h = doppler_channels(1, TINY.history + 3)[0]
    t = TINY.history - 1

    def nmse(deferred_timeout_s: float = 10.0) -> dict[str, tuple[int, int]]:
        engine.wait_background(deferred_timeout_s)
        return {tr.version: (tr.nmse.predictions, tr.nmse.scored)
                for tr in engine.status().tracks if tr.version in ("lin-1", "out-2")}

    engine.observe([Observation("u", t, history=h[:t + 1])])
    assert nmse() == {"lin-1": (1, 0), "out-2": (1, 0)}
    answers, background = engine.observe_deferred([Observation("u", t + 1, srs=h[t + 1])])
    assert answers[0].ready and answers[0].model_version == "lin-1"
    assert nmse(0.05) == {"lin-1": (2, 0), "out-2": (1, 0)}    # nothing queued yet
    threading.Timer(0.2, background).start()     # as the gRPC thread does after sending
    assert nmse() == {"lin-1": (2, 1), "out-2": (2, 1)}        # waited for the hand-in
    with pytest.raises(TooLarge):                              # "v" would be a second UE
        engine.observe_deferred([Observation("u", t + 2, srs=h[t + 2]),
                                 Observation("v", t, history=h[:t + 1])])
    assert nmse()["lin-1"] == (2, 3)           # the SRS of u scored both pending predictions
    engine.close()


def test_shadow_is_fully_scored_when_the_background_lags(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A shadow run that lands long after later SRS (the ring has moved on) still has every
    step scored: its prediction is registered when the window is served and filled in later."""
    run_shadow = Engine._run_shadow

    def late(self: Engine, *args: object) -> None:
        time.sleep(0.01)
        run_shadow(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "_run_shadow", late)
    engine = Engine(TINY)
    engine.set_models(active=_runner(tmp_path, "linear", "lin-1"),
                      shadow=_runner(tmp_path, "outdated", "out-2"))
    _stream(engine, doppler_channels(1, 30)[0])
    engine.wait_background()
    tracks = {t.version: t.nmse for t in engine.status().tracks}
    assert tracks["out-2"].scored == tracks["lin-1"].scored > 0
    engine.close()
