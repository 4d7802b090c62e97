"""Teacher validation before it may teach: beat the classical baselines, calibrated beam head.

``validate_teacher(teacher_path, preset, sets, val)`` checks a teacher checkpoint and returns a
``TeacherVerdict``:

- **Accuracy**: on the ``"test"`` set and on every held-out set given (``"heldout-..."``, scenarios
  the teacher never trained on), the teacher's NMSE (dB, ``csi.metrics.nmse_db`` over the whole
  horizon, noisy SRS history -> clean future) must be strictly below every classical baseline of
  ``csi.predictors`` (outdated CSI, AR/Wiener, Kalman).
- **Beam-head calibration** on the test set: expected calibration error (ECE) of the top-1 softmax
  confidence of ``beam_logits`` ``[batch, n_beams]`` against ``csi.codebook.best_beam`` of the clean
  first future step, over ``n_bins`` (15) equal-width confidence bins. When it exceeds the
  threshold, a temperature ``T`` (one scalar, logits / T) is fitted by minimising the NLL on the
  validation set (bounded 1-D search over log T) and the test ECE is measured again. Calibration
  does not block the teacher: the verdict records the temperature (``TeacherVerdict.temperature``)
  and warns when the ECE after scaling still exceeds the threshold (the validation split is
  noisier than the test split, 5-20 vs 18 dB SRS SNR, and a 15-bin ECE on 1000 samples itself
  varies by a few hundredths, so a residual ECE near the threshold says little about teaching).

The verdict is JSON (``TeacherVerdict.as_dict``) and lives next to the teacher as
``<teacher>.validation.json`` together with the checkpoint's sha256, so ``require_validated``
(what ``kdran job run`` calls) can refuse a teacher without a passing verdict or whose file changed
since it was validated. ``plot_reliability`` draws the reliability diagram (PNG, matplotlib Agg).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from csi.codebook import best_beam, dft_codebook
from csi.dataset import ChannelSet
from csi.metrics import nmse_db, topk_beam_accuracy
from csi.predictors import CLASSICAL
from csi.presets import Preset

VERDICT_SUFFIX = ".validation.json"
N_BINS = 15
DEFAULT_ECE_THRESHOLD = 0.05
TEST_SET = "test"
HELDOUT_PREFIX = "heldout"
LOG_T_BOUNDS = (-5.0, 5.0)          # temperature search range: T in [e^-5, e^5]
_CHUNK = 1 << 20                    # bytes per read when hashing a checkpoint


class TeacherNotValidated(ValueError):
    """The teacher has no passing, current validation verdict (the message says why)."""


# --------------------------------------------------------------------------------------------
# Calibration: ECE, reliability bins, temperature scaling. Logits ``[n, n_beams]``, labels ``[n]``.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reliability:
    """Per confidence bin (equal width on [0, 1]): sample count, mean top-1 confidence and
    top-1 accuracy (``None`` for an empty bin), and the resulting ECE."""

    count: list[int]
    confidence: list[float | None]
    accuracy: list[float | None]
    ece: float

    @property
    def n_bins(self) -> int:
        return len(self.count)


def _check_logits(logits: np.ndarray, labels: np.ndarray) -> None:
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be a non-empty [n, n_beams] array, got {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must be [{logits.shape[0]}], got {labels.shape}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must be beam indices in 0..{logits.shape[1] - 1}")


def reliability(logits: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS,
                temperature: float = 1.0) -> Reliability:
    """Reliability bins and ECE of ``softmax(logits / temperature)``.

    Bin ``i`` holds confidences in ``(i / n_bins, (i + 1) / n_bins]``;
    ``ECE = sum_i (n_i / n) |accuracy_i - confidence_i|``.
    """
    _check_logits(logits, labels)
    if n_bins < 1 or temperature <= 0:
        raise ValueError(f"need n_bins >= 1 and temperature > 0, got {n_bins}, {temperature}")
    probs = softmax(logits.astype(np.float64) / temperature, axis=1)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    filled = count > 0
    ece = float(np.sum(np.abs(acc_sum[filled] - conf_sum[filled])) / len(labels))
    return Reliability(
        count=[int(c) for c in count],
        confidence=[float(s / c) if c else None for s, c in zip(conf_sum, count, strict=True)],
        accuracy=[float(s / c) if c else None for s, c in zip(acc_sum, count, strict=True)],
        ece=ece)


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS,
                               temperature: float = 1.0) -> float:
    """ECE of the top-1 confidence (0 = perfectly calibrated, at most 1)."""
    return reliability(logits, labels, n_bins, temperature).ece


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``labels`` under ``softmax(logits / T)``."""
    _check_logits(logits, labels)
    logp = log_softmax(logits.astype(np.float64) / temperature, axis=1)
    return float(-np.mean(logp[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The scalar ``T`` minimising ``nll(logits, labels, T)`` (bounded Brent search on log T)."""
    _check_logits(logits, labels)
    found = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                            bounds=LOG_T_BOUNDS, method="bounded",
                            options={"xatol": 1e-4})
    return float(np.exp(found.x))


# --------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SetResult:
    """Teacher and baselines on one set: NMSE in dB (lower is better), beam top-1 accuracy."""

    n: int
    teacher_db: float
    baselines_db: dict[str, float]
    beam_top1: float


@dataclass(frozen=True)
class Calibration:
    """Beam-head calibration: ECE on ``eval_set`` before and after temperature scaling.

    ``temperature`` is 1.0 and ``ece_after`` equals ``ece_before`` when no scaling was needed.
    """

    eval_set: str
    fit_set: str
    n_bins: int
    threshold: float
    scaled: bool
    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    before: Reliability
    after: Reliability


@dataclass(frozen=True)
class TeacherVerdict:
    """Whether a teacher may teach, why, and the numbers behind it (JSON via ``as_dict``)."""

    passed: bool
    reasons: list[str]
    teacher: str
    teacher_sha256: str
    teacher_version: str
    preset: str
    must_beat: list[str]
    sets: dict[str, SetResult]
    calibration: Calibration
    warnings: list[str] = field(default_factory=list)
    created_unix: float = field(default_factory=time.time)

    @property
    def temperature(self) -> float:
        """Beam-logit temperature that calibrates the teacher (1.0 = none needed)."""
        return self.calibration.temperature

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherVerdict:
        """Inverse of ``as_dict`` (``KeyError``/``TypeError`` on a malformed document)."""
        cal = dict(data["calibration"])
        cal["before"] = Reliability(**cal["before"])
        cal["after"] = Reliability(**cal["after"])
        return cls(**{**data, "sets": {k: SetResult(**v) for k, v in data["sets"].items()},
                      "calibration": Calibration(**cal)})

    def write(self, path: Path) -> Path:
        """Write the verdict JSON to ``path`` (atomically); return ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path


def verdict_path(teacher_path: Path) -> Path:
    """Where the verdict of ``teacher_path`` lives: ``<teacher>.validation.json``."""
    return teacher_path.with_name(teacher_path.name + VERDICT_SUFFIX)


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_verdict(teacher_path: Path) -> TeacherVerdict:
    """The stored verdict of ``teacher_path`` (``TeacherNotValidated`` if absent or unreadable)."""
    path = verdict_path(teacher_path)
    if not path.is_file():
        raise TeacherNotValidated(
            f"teacher {teacher_path} has no validation verdict ({path.name}); run "
            f"`kdran teacher validate --teacher {teacher_path} --preset <preset>` first")
    try:
        return TeacherVerdict.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise TeacherNotValidated(f"validation verdict {path} is unreadable ({exc!r}); "
                                  "validate the teacher again") from exc


def require_validated(teacher_path: Path, preset: Preset) -> TeacherVerdict:
    """The teacher's passing, current verdict for ``preset``; else ``TeacherNotValidated``.

    Current means: the stored sha256 equals the checkpoint file's (a teacher retrained or replaced
    after validation is refused) and the verdict is for ``preset``.
    """
    verdict = read_verdict(teacher_path)
    if verdict.teacher_sha256 != file_sha256(teacher_path):
        raise TeacherNotValidated(
            f"validation verdict of {teacher_path} is stale: the checkpoint changed since it was "
            "validated (sha256 differs); validate the teacher again")
    if verdict.preset != preset.name:
        raise TeacherNotValidated(f"teacher {teacher_path} was validated for preset "
                                  f"{verdict.preset!r}, not {preset.name!r}")
    if not verdict.passed:
        raise TeacherNotValidated(f"teacher {teacher_path} failed validation: "
                                  + "; ".join(verdict.reasons))
    return verdict


# --------------------------------------------------------------------------------------------
# Running the validation
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ValidationOptions:
    """Baselines the teacher must beat (``csi.predictors.CLASSICAL`` names) and the ECE rule."""

    must_beat: tuple[str, ...] = tuple(CLASSICAL)
    ece_threshold: float = DEFAULT_ECE_THRESHOLD
    n_bins: int = N_BINS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.must_beat) - set(CLASSICAL))
        if unknown or not self.must_beat:
            raise ValueError(f"must_beat must name classical baselines {sorted(CLASSICAL)}, "
                             f"got {list(self.must_beat)}")
        if not 0.0 < self.ece_threshold < 1.0:
            raise ValueError(f"ece_threshold must be in (0, 1), got {self.ece_threshold}")
        if self.n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {self.n_bins}")


def check_set_names(names: Iterable[str]) -> None:
    """``ValueError`` unless ``names`` hold ``"test"`` and at least one ``"heldout-..."`` set."""
    names = list(names)
    if TEST_SET not in names or not any(name.startswith(HELDOUT_PREFIX) for name in names):
        raise ValueError(f"teacher validation needs the {TEST_SET!r} set and at least one "
                         f"held-out set ('{HELDOUT_PREFIX}-...'); got {sorted(names)}")


def _check_sets(sets: Mapping[str, ChannelSet]) -> None:
    check_set_names(sets)
    empty = sorted(name for name, s in sets.items() if len(s) == 0)
    if empty:
        raise ValueError(f"empty set(s) {empty}")


def _beam_labels(future: np.ndarray, preset: Preset) -> np.ndarray:
    """Best beam ``[b]`` of the clean first future step of ``future`` ``[b, horizon, a, r]``."""
    return best_beam(future[:, 0], dft_codebook(preset))


def _score_set(teacher: Any, channels: ChannelSet, preset: Preset,
               must_beat: tuple[str, ...]) -> tuple[SetResult, np.ndarray, np.ndarray]:
    """(scores, teacher beam logits ``[b, n_beams]``, best-beam labels ``[b]``) on one set."""
    history, future = channels.split_time(preset.history)
    pred, logits = teacher.predict_with_beams(history)
    labels = _beam_labels(future, preset)
    horizon = future.shape[1]
    baselines = {name: nmse_db(CLASSICAL[name]().predict(history, horizon), future)
                 for name in must_beat}
    result = SetResult(n=len(channels), teacher_db=nmse_db(pred[:, :horizon], future),
                       baselines_db=baselines, beam_top1=topk_beam_accuracy(logits, labels, 1))
    return result, logits, labels


def _accuracy_reasons(name: str, result: SetResult) -> list[str]:
    return [f"{name}: teacher {result.teacher_db:.2f} dB does not beat {baseline} "
            f"{ref:.2f} dB" for baseline, ref in result.baselines_db.items()
            if not result.teacher_db < ref]


def calibrate(test_logits: np.ndarray, test_labels: np.ndarray, val_logits: np.ndarray,
              val_labels: np.ndarray, options: ValidationOptions) -> Calibration:
    """ECE on the test logits; temperature fitted on the validation logits when over threshold."""
    before = reliability(test_logits, test_labels, options.n_bins)
    scaled = before.ece > options.ece_threshold
    temperature = fit_temperature(val_logits, val_labels) if scaled else 1.0
    after = reliability(test_logits, test_labels, options.n_bins, temperature)
    return Calibration(eval_set=TEST_SET, fit_set="val", n_bins=options.n_bins,
                       threshold=options.ece_threshold, scaled=scaled, temperature=temperature,
                       ece_before=before.ece, ece_after=after.ece,
                       nll_before=nll(test_logits, test_labels),
                       nll_after=nll(test_logits, test_labels, temperature),
                       before=before, after=after)


def validate_teacher(teacher_path: Path, preset: Preset, sets: Mapping[str, ChannelSet],
                     val: ChannelSet, options: ValidationOptions | None = None) -> TeacherVerdict:
    """Validate the teacher checkpoint at ``teacher_path`` (module docstring).

    ``sets`` maps set names to ``ChannelSet``s and must hold ``"test"`` and at least one
    ``"heldout-..."`` set; ``val`` is the validation split used only to fit the temperature.
    Does not write anything (``TeacherVerdict.write`` / ``verdict_path`` do).
    """
    from distill.checkpoint import load_teacher
    from distill.evaluate import TorchPredictor

    options = options or ValidationOptions()
    _check_sets(sets)
    module, payload = load_teacher(teacher_path, preset)
    teacher = TorchPredictor("teacher", module, preset)
    results: dict[str, SetResult] = {}
    beams: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    reasons: list[str] = []
    for name, channels in sets.items():
        result, logits, labels = _score_set(teacher, channels, preset, options.must_beat)
        results[name], beams[name] = result, (logits, labels)
        reasons += _accuracy_reasons(name, result)
    val_history, val_future = val.split_time(preset.history)
    val_logits = teacher.predict_with_beams(val_history)[1]
    calibration = calibrate(*beams[TEST_SET], val_logits, _beam_labels(val_future, preset),
                            options)
    warnings = ([f"beam head still miscalibrated after temperature scaling: ECE "
                 f"{calibration.ece_after:.3f} (T={calibration.temperature:.3g}) > "
                 f"{options.ece_threshold:g}"] if calibration.ece_after > options.ece_threshold
                else [])
    return TeacherVerdict(passed=not reasons, reasons=reasons, warnings=warnings,
                          teacher=str(teacher_path),
                          teacher_sha256=file_sha256(teacher_path),
                          teacher_version=str(payload["version"]), preset=preset.name,
                          must_beat=list(options.must_beat), sets=results,
                          calibration=calibration)


# --------------------------------------------------------------------------------------------
# Presentation
# --------------------------------------------------------------------------------------------

def format_verdict(verdict: TeacherVerdict) -> str:
    """The verdict as a text table: NMSE (dB) per set and predictor, calibration, outcome."""
    names = ["teacher", *verdict.must_beat]
    lines = [f"{'set':<18}{'n':>6}" + "".join(f"{n:>10}" for n in names) + f"{'top1':>8}"]
    for set_name, r in verdict.sets.items():
        values = [r.teacher_db, *(r.baselines_db[n] for n in verdict.must_beat)]
        lines.append(f"{set_name:<18}{r.n:>6}" + "".join(f"{v:>10.2f}" for v in values)
                     + f"{r.beam_top1:>8.3f}")
    cal = verdict.calibration
    lines.append(f"beam ECE ({cal.n_bins} bins, {cal.eval_set}): {cal.ece_before:.4f}"
                 + (f" -> {cal.ece_after:.4f} with T={cal.temperature:.4g} fitted on "
                    f"{cal.fit_set}" if cal.scaled else " (no scaling needed)")
                 + f"; threshold {cal.threshold:g}")
    lines += [f"WARNING: {w}" for w in verdict.warnings]
    lines.append("PASSED: the teacher may teach" if verdict.passed
                 else "FAILED: " + "; ".join(verdict.reasons))
    return "\n".join(lines)


def plot_reliability(calibration: Calibration, path: Path, title: str = "") -> Path:
    """Reliability diagram (accuracy vs confidence per bin, before/after scaling) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 1.0 / calibration.n_bins
    centres = (np.arange(calibration.n_bins) + 0.5) * width
    fig, ax = plt.subplots(figsize=(5.0, 5.0))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    curves = [(calibration.before, "T=1", "tab:red")]
    if calibration.scaled:
        curves.append((calibration.after, f"T={calibration.temperature:.3g}", "tab:blue"))
    for rel, label, colour in curves:
        acc = np.array([np.nan if a is None else a for a in rel.accuracy])
        ax.bar(centres, np.nan_to_num(acc), width=width, alpha=0.35, color=colour,
               edgecolor=colour, label=f"{label}: ECE {rel.ece:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-1 confidence", ylabel="top-1 accuracy",
           title=title or f"beam-head reliability ({calibration.eval_set} set)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
