"""Hardware-aware student search: ``kdran distill search``.

A search over student shapes (``StudentConfig``: width ``dim``, depth, heads per layer,
``head_dim``, MLP width, tokenisation ``patch_a`` x ``patch_r``, ``time_features``, and the
in-graph AR prior's ``ar_order`` and fit ``ar_rb_stride``) that scores
every candidate on this machine and on the task:

1. **Candidates**: the preset's default student first (the reference), then seeded random draws
   from per-axis choices (``SearchSpace``; layers are uniform: ``heads`` and MLP width repeat
   ``depth`` times), duplicates dropped, at most ``candidates`` in all.
2. **Latency** of every candidate first: the untrained student is exported to ONNX
   (``distill.export.export_onnx``; with ``int8`` also quantized, ``quantize_int8``) and timed with
   ONNX Runtime (``distill.latency.measure_latency``: batch 1, one thread, p50/p99 µs). Latency
   depends on the graph, not on the weights, so it is measured once, back to back for all
   candidates (comparable under the same machine load). Params, matmul FLOPs and the ONNX size
   come with it. Candidates whose *median* (p50) is above ``skip_factor`` x the p99 budget are
   not trained: they cannot fit, and unlike p99 the median is barely moved by bursts of machine
   load (on the shared 2-core development VM p99 of every candidate jumped to 4-8 ms in such a
   burst while p50 stayed at 0.26 ms, measured).
3. **Accuracy** after a short distillation from the teacher (``distill.kd.train_student`` with the
   ``KdConfig`` and a shortened ``student_schedule``) on a seeded fraction of the training set,
   scored with ``distill.evaluate.score`` (NMSE dB) on the validation or test set; with ``int8``
   the quantized ONNX model is what is scored.
4. **Objective** (lower is better): ``nmse_db + penalty * log2(params)``. The parameter count
   enters on a log scale because accuracy grows roughly by a constant number of dB per doubling of
   model size: ``penalty`` is the accuracy (dB) a candidate must gain to justify twice the
   parameters (KD-guided architecture search with a complexity penalty). Default 0.5 dB.
5. **Pareto front** of NMSE dB vs p99 µs over the trained candidates (both minimised), and the
   **pick**: among trained candidates with p99 within the budget, the most accurate one
   (``pick_by="nmse"``) or the one with the lowest objective (``pick_by="objective"``).

Run directory: ``search.json`` (``SearchResult.as_dict``), ``search.png`` unless another plot
path is given, and per trained candidate ``students/<name>.pt`` and ``students/<name>.onnx``
(``.int8.onnx`` with ``int8``).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from csi.dataset import ChannelSet
from csi.presets import Preset
from distill.checkpoint import load_teacher, save_model
from distill.evaluate import OnnxPredictor, TorchPredictor, score
from distill.export import export_onnx, quantize_int8
from distill.flops import forward_flops
from distill.kd import student_schedule, train_student
from distill.latency import measure_latency
from distill.losses import KdConfig
from distill.models.student import Student, StudentConfig, student_config
from distill.models.teacher import Teacher
from distill.reports import save_figure, write_json
from distill.runtime import count_params, setup_torch
from distill.tensors import TaskData

Log = Callable[[str], None]
SCORE_SETS = ("val", "test")
PICK_BY = ("nmse", "objective")


@dataclass(frozen=True)
class SearchSpace:
    """Per-axis choices; a candidate takes one value per axis. ``patch``: ``(patch_a, patch_r)``
    pairs (each must tile the preset's antennas and RBs); ``mlp_ratio``: MLP width / ``dim``;
    ``ar_order`` / ``ar_rb_stride``: the AR prior's order and the RB stride of its fit (its cost
    and accuracy; see ``distill.models.ar_prior``)."""

    dim: tuple[int, ...]
    depth: tuple[int, ...]
    heads: tuple[int, ...]
    head_dim: tuple[int, ...]
    mlp_ratio: tuple[int, ...]
    patch: tuple[tuple[int, int], ...]
    time_features: tuple[int, ...]
    ar_order: tuple[int, ...] = (6,)
    ar_rb_stride: tuple[int, ...] = (1,)

    def size(self) -> int:
        """Number of distinct points in the space."""
        return math.prod(len(v) for v in asdict(self).values())


_STD_SPACE = SearchSpace(dim=(32, 48, 64, 96), depth=(1, 2, 3), heads=(2, 4), head_dim=(8, 16),
                         mlp_ratio=(1, 2), patch=((8, 8), (8, 12), (16, 8), (16, 12), (4, 8)),
                         time_features=(4, 8), ar_order=(4, 6), ar_rb_stride=(4, 8, 16))
SPACES: dict[str, SearchSpace] = {
    "tiny": SearchSpace(dim=(16, 32), depth=(1, 2), heads=(2, 4), head_dim=(4, 8),
                        mlp_ratio=(1, 2), patch=((4, 4), (2, 4), (4, 6)), time_features=(2, 4),
                        ar_order=(4, 6), ar_rb_stride=(1, 2)),
    "demo": _STD_SPACE, "std": _STD_SPACE, "full": _STD_SPACE,
}


@dataclass(frozen=True)
class SearchOptions:
    """Everything ``run_search`` can be told. ``budget_us``: p99 budget (µs); ``penalty``: the
    objective's lambda (dB per doubling of params); ``skip_factor``: candidates with p50 above
    ``skip_factor * budget_us`` are not trained; ``epochs`` / ``train_fraction``: the short KD
    schedule; ``score_set``: ``"val"`` or ``"test"``."""

    budget_us: float
    candidates: int = 8
    epochs: int = 1
    train_fraction: float = 1.0
    seed: int = 0
    penalty: float = 0.5
    skip_factor: float = 3.0
    int8: bool = False
    score_set: str = "val"
    pick_by: str = "nmse"
    latency_runs: int = 300
    kd: KdConfig = field(default_factory=KdConfig)
    space: SearchSpace | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        problems = [f"{name} must be {rule}, got {value}" for name, value, ok, rule in (
            ("budget_us", self.budget_us, self.budget_us > 0, "> 0"),
            ("candidates", self.candidates, self.candidates >= 1, ">= 1"),
            ("epochs", self.epochs, self.epochs >= 1, ">= 1"),
            ("train_fraction", self.train_fraction, 0 < self.train_fraction <= 1, "in (0, 1]"),
            ("penalty", self.penalty, self.penalty >= 0, ">= 0"),
            ("skip_factor", self.skip_factor, self.skip_factor >= 1, ">= 1"),
            ("latency_runs", self.latency_runs, self.latency_runs >= 1, ">= 1"),
            ("score_set", self.score_set, self.score_set in SCORE_SETS, f"one of {SCORE_SETS}"),
            ("pick_by", self.pick_by, self.pick_by in PICK_BY, f"one of {PICK_BY}"),
        ) if not ok]
        if problems:
            raise ValueError("invalid search options: " + "; ".join(problems))


@dataclass
class CandidateResult:
    """One candidate: size, latency (µs), accuracy (NMSE dB on the score set; ``None`` when not
    trained, with the reason in ``skipped``), objective and flags."""

    name: str
    config: dict[str, Any]
    params: int
    flops: int
    size_bytes: int
    p50_us: float
    p99_us: float
    nmse_db: float | None = None
    objective: float | None = None
    train_s: float | None = None
    skipped: str | None = None
    onnx: str | None = None
    on_front: bool = False
    chosen: bool = False

    @property
    def trained(self) -> bool:
        return self.nmse_db is not None

    @property
    def nmse(self) -> float:
        """``nmse_db`` of a trained candidate (error for an untrained one)."""
        if self.nmse_db is None:
            raise ValueError(f"candidate {self.name} was not trained: {self.skipped}")
        return self.nmse_db


@dataclass
class SearchResult:
    """The search as written to ``search.json``."""

    preset: str
    budget_us: float
    objective: str
    options: dict[str, Any]
    space: dict[str, Any]
    teacher_version: str
    data_hash: str
    train_sequences: int
    candidates: list[CandidateResult]
    chosen: str | None
    message: str
    load_average: dict[str, float]
    wall_s: float
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_name(cfg: StudentConfig) -> str:
    """``d64-L3-h4x16-m128-p8x8-f8-ar6s8`` (layers uniform) or with ``/``-joined per-layer
    lists."""
    heads = "/".join(dict.fromkeys(str(h) for h in cfg.heads))
    mlp = "/".join(dict.fromkeys(str(m) for m in cfg.mlp))
    return (f"d{cfg.dim}-L{len(cfg.heads)}-h{heads}x{cfg.head_dim}-m{mlp}"
            f"-p{cfg.patch_a}x{cfg.patch_r}-f{cfg.time_features}"
            f"-ar{cfg.ar_order}s{cfg.ar_rb_stride}")


def _draw(preset: Preset, space: SearchSpace, rng: np.random.Generator) -> StudentConfig:
    def choose(choices: tuple[Any, ...]) -> Any:
        return choices[int(rng.integers(len(choices)))]

    dim, depth = choose(space.dim), choose(space.depth)
    patch_a, patch_r = choose(space.patch)
    return student_config(preset, dim=dim, head_dim=choose(space.head_dim),
                          heads=(choose(space.heads),) * depth,
                          mlp=(choose(space.mlp_ratio) * dim,) * depth,
                          patch_a=patch_a, patch_r=patch_r,
                          time_features=choose(space.time_features),
                          ar_order=choose(space.ar_order), ar_rb_stride=choose(space.ar_rb_stride))


def space_for(preset: Preset) -> SearchSpace:
    """The default search space of ``preset`` (clear error for an unknown one)."""
    if preset.name not in SPACES:
        raise ValueError(f"no search space for preset {preset.name!r}; known: {sorted(SPACES)}")
    return SPACES[preset.name]


def sample_candidates(preset: Preset, count: int, seed: int,
                      space: SearchSpace | None = None) -> list[StudentConfig]:
    """The preset's default student, then distinct seeded draws from ``space`` (default
    ``SPACES[preset.name]``), ``count`` in all (fewer only if the space is smaller)."""
    if count < 1:
        raise ValueError(f"the search needs at least one candidate, got {count}")
    space = space or space_for(preset)
    rng = np.random.default_rng(seed)
    configs = [student_config(preset)]
    for _ in range(50 * count):
        if len(configs) >= min(count, space.size() + 1):
            break
        cfg = _draw(preset, space, rng)
        if cfg not in configs:
            configs.append(cfg)
    return configs[:count]


def objective(nmse_db: float, params: int, penalty: float) -> float:
    """``nmse_db + penalty * log2(params)`` (lower is better)."""
    if params < 1:
        raise ValueError(f"a candidate needs at least one parameter, got {params}")
    return nmse_db + penalty * math.log2(params)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For ``(x, y)`` points, both minimised: ``True`` where no other point is at least as good in
    both and strictly better in one (equal points are all on the front)."""
    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)

    return [not dominated(p) for p in points]


def pick(results: Sequence[CandidateResult], budget_us: float, by: str = "nmse",
         penalty: float = 0.5) -> CandidateResult | None:
    """The trained candidate with p99 <= ``budget_us`` and the lowest NMSE (``by="nmse"``) or
    objective with ``penalty`` (``by="objective"``); ties go to the lower p99. ``None`` when
    nothing fits."""
    if by not in PICK_BY:
        raise ValueError(f"pick_by must be one of {PICK_BY}, got {by!r}")
    fits = [r for r in results if r.trained and r.p99_us <= budget_us]
    if not fits:
        return None
    return min(fits, key=lambda r: (r.nmse if by == "nmse" else
                                    objective(r.nmse, r.params, penalty), r.p99_us))


def nothing_fits_message(results: Sequence[CandidateResult], budget_us: float) -> str:
    """Why no candidate was picked (the fastest candidate measured, how many were skipped)."""
    fastest = min(results, key=lambda r: r.p99_us)
    skipped = sum(1 for r in results if not r.trained)
    return (f"no candidate fits the p99 budget of {budget_us:g} us: the fastest, {fastest.name}, "
            f"has p99 {fastest.p99_us:.0f} us ({skipped} of {len(results)} not trained)")


def mark(results: list[CandidateResult], budget_us: float, penalty: float,
         by: str) -> tuple[CandidateResult | None, str]:
    """Fill objective, ``on_front`` and ``chosen`` in place; return (pick, message)."""
    trained = [r for r in results if r.trained]
    for r, front in zip(trained, pareto_front([(r.nmse, r.p99_us) for r in trained]),
                        strict=True):
        r.objective = objective(r.nmse, r.params, penalty)
        r.on_front = front
    chosen = pick(results, budget_us, by, penalty)
    if chosen is None:
        return None, nothing_fits_message(results, budget_us)
    chosen.chosen = True
    return chosen, (f"picked {chosen.name}: NMSE {chosen.nmse_db:.2f} dB, p99 "
                    f"{chosen.p99_us:.0f} us <= {budget_us:g} us, {chosen.params} params")


def _screen(cfg: StudentConfig, preset: Preset, tmp: Path,
            options: SearchOptions) -> CandidateResult:
    """Export the untrained candidate and measure params, FLOPs, size and latency."""
    name = candidate_name(cfg)
    setup_torch(options.seed)
    student = Student(cfg, preset)
    path = _export(student, preset, tmp / f"{name}.onnx", name, options)
    latency = measure_latency(path, preset, runs=options.latency_runs, seed=options.seed)
    return CandidateResult(name, asdict(cfg), count_params(student),
                           forward_flops(student, preset), path.stat().st_size,
                           latency.p50_us, latency.p99_us)


def _export(student: Student, preset: Preset, path: Path, version: str,
            options: SearchOptions) -> Path:
    """fp32 ONNX at ``path``; with ``int8`` the quantized model next to it (returned), in the
    mode ``kdran distill`` publishes (``quantize_int8``'s default)."""
    export_onnx(student, preset, path, version)
    if not options.int8:
        return path
    return quantize_int8(path, path.with_suffix(".int8.onnx"))


@dataclass
class _Context:
    """What every candidate's training and scoring needs."""

    preset: Preset
    teacher: Teacher
    teacher_version: str
    data_hash: str
    train: TaskData
    val: TaskData
    scored: TaskData
    out: Path
    options: SearchOptions


def _train(ctx: _Context, result: CandidateResult) -> None:
    """Distill the candidate briefly, save it, score it on the score set (in place)."""
    opts = ctx.options
    setup_torch(opts.seed)
    student = Student(StudentConfig.from_dict(result.config), ctx.preset)
    schedule = student_schedule(ctx.preset, epochs=opts.epochs, seed=opts.seed)
    report = train_student(student, ctx.train, ctx.val, ctx.preset, opts.kd, schedule,
                           ctx.teacher, opts.progress, result.name)
    folder = ctx.out / "students"
    save_model(folder / f"{result.name}.pt", "student", student,
               {"parent": ctx.teacher_version, "data_hash": ctx.data_hash, "kd": asdict(opts.kd),
                "training": report.as_dict(), "search": True})
    onnx = _export(student, ctx.preset, folder / f"{result.name}.onnx",
                   f"{result.name}-{ctx.teacher_version}", opts)
    predictor: Any = (OnnxPredictor(result.name, onnx, ctx.preset) if opts.int8
                      else TorchPredictor(result.name, student, ctx.preset))
    data = ctx.scored
    result.nmse_db = score(predictor, data.history_complex(), data.future_complex(),
                           data.speed_kmh, ctx.preset).nmse_db
    result.train_s = report.wall_s
    result.onnx = str(onnx)


def _context(preset: Preset, teacher_path: Path, train: ChannelSet, val: ChannelSet,
             test: ChannelSet | None, out_dir: Path, options: SearchOptions) -> _Context:
    teacher, payload = load_teacher(teacher_path, preset)
    if options.score_set == "test" and test is None:
        raise ValueError("scoring on the test set needs the test split")
    train_data = TaskData.from_set(train, preset).fraction(options.train_fraction, options.seed)
    val_data = TaskData.from_set(val, preset)
    scored = val_data if test is None or options.score_set == "val" else TaskData.from_set(
        test, preset)
    return _Context(preset, teacher, payload["version"], train.content_hash(), train_data,
                    val_data, scored, out_dir, options)


def _screen_all(configs: list[StudentConfig], ctx: _Context, log: Log) -> list[CandidateResult]:
    """Latency, size and FLOPs of every candidate, back to back (exports in a temp folder)."""
    results: list[CandidateResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, cfg in enumerate(configs, 1):
            r = _screen(cfg, ctx.preset, Path(tmp), ctx.options)
            results.append(r)
            log(f"[{i}/{len(configs)}] latency {r.name}: {r.params} params, "
                f"{r.flops / 1e6:.2f} MFLOPs, p50 {r.p50_us:.0f} us, p99 {r.p99_us:.0f} us")
    return results


def _train_all(results: list[CandidateResult], ctx: _Context, log: Log) -> None:
    """Distill and score every candidate within the skip limit; mark the others skipped."""
    opts = ctx.options
    for i, r in enumerate(results, 1):
        if r.p50_us > opts.skip_factor * opts.budget_us:
            r.skipped = f"p50 {r.p50_us:.0f} us > {opts.skip_factor:g} x budget"
            log(f"[{i}/{len(results)}] skip {r.name}: {r.skipped}, not trained")
            continue
        log(f"[{i}/{len(results)}] distilling {r.name} ({opts.epochs} epoch(s), "
            f"{len(ctx.train)} sequences)")
        _train(ctx, r)
        log(f"[{i}/{len(results)}] {r.name}: NMSE {r.nmse_db:.2f} dB on {opts.score_set} "
            f"({r.train_s:.1f} s)")


def run_search(preset: Preset, teacher_path: Path, train: ChannelSet, val: ChannelSet,
               out_dir: Path, options: SearchOptions, log: Log = print,
               test: ChannelSet | None = None) -> SearchResult:
    """Run the search (module docstring), write ``out_dir/search.json`` and return the result."""
    began, load_start = time.perf_counter(), os.getloadavg()[0]
    ctx = _context(preset, teacher_path, train, val, test, out_dir, options)
    space = options.space or space_for(preset)
    configs = sample_candidates(preset, options.candidates, options.seed, space)
    log(f"search: {len(configs)} candidates, p99 budget {options.budget_us:g} us "
        f"({'INT8' if options.int8 else 'fp32'}, batch 1, 1 thread), training skipped for p50 "
        f"above {options.skip_factor * options.budget_us:g} us")
    results = _screen_all(configs, ctx, log)
    _train_all(results, ctx, log)
    picked, message = mark(results, options.budget_us, options.penalty, options.pick_by)
    result = SearchResult(
        preset=preset.name, budget_us=options.budget_us,
        objective=f"nmse_db + {options.penalty:g} * log2(params)",
        options=asdict(options), space=asdict(space), teacher_version=ctx.teacher_version,
        data_hash=ctx.data_hash, train_sequences=len(ctx.train), candidates=results,
        chosen=picked.name if picked else None, message=message,
        load_average={"start": load_start, "end": os.getloadavg()[0]},
        wall_s=time.perf_counter() - began,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    write_json(result, out_dir / "search.json")
    return result


def format_table(results: Sequence[CandidateResult], budget_us: float) -> str:
    """Candidates as aligned text: trained ones by objective, then the skipped by p99. Flags:
    ``F`` on the Pareto front, ``>`` p99 over budget, ``*`` the pick."""
    trained = sorted((r for r in results if r.trained), key=lambda r: float(r.objective or 0.0))
    rows = trained + sorted((r for r in results if not r.trained), key=lambda r: r.p99_us)
    head = (f"{'candidate':<34} {'params':>8} {'MFLOPs':>7} {'KiB':>6} {'p50 us':>7} "
            f"{'p99 us':>7} {'NMSE dB':>8} {'objective':>9} {'train s':>7}  flags")
    lines = [head, "-" * len(head)]
    for r in rows:
        flags = "".join(f for f, on in (("F", r.on_front), (">", r.p99_us > budget_us),
                                        ("*", r.chosen)) if on)
        nums = ("-", "-", "-") if not r.trained else (
            f"{r.nmse_db:.2f}", f"{r.objective:.2f}", f"{r.train_s:.1f}")
        lines.append(f"{r.name:<34} {r.params:>8d} {r.flops / 1e6:>7.2f} "
                     f"{r.size_bytes / 1024:>6.0f} {r.p50_us:>7.0f} {r.p99_us:>7.0f} "
                     f"{nums[0]:>8} {nums[1]:>9} {nums[2]:>7}  {flags}"
                     + (f" not trained: {r.skipped}" if r.skipped else ""))
    return "\n".join(lines)


def plot_front(results: Sequence[CandidateResult], budget_us: float, path: Path,
               title: str) -> Path:
    """PNG: NMSE (dB) vs p99 (µs) of the trained candidates, the Pareto front as a red step line,
    the budget as a dashed vertical line, untrained candidates as crosses along the top, the pick
    annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in results if r.trained]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    ax.scatter([r.p99_us for r in trained], [r.nmse for r in trained], color="tab:blue",
               s=28, label="trained candidate", zorder=2)
    front = sorted((r.p99_us, r.nmse) for r in trained if r.on_front)
    if front:
        ax.step(*zip(*front, strict=True), where="post", color="tab:red", linewidth=1.5,
                marker="o", label="Pareto front", zorder=3)
    ax.axvline(budget_us, color="grey", linestyle="--", linewidth=1,
               label=f"p99 budget {budget_us:g} us")
    skipped = [r.p99_us for r in results if not r.trained]
    if skipped:
        top = ax.get_ylim()[1] if trained else 0.0
        ax.scatter(skipped, [top] * len(skipped), marker="x", color="grey",
                   label="not trained (too slow)", zorder=2)
    for r in results:
        if r.chosen:
            ax.annotate(f"pick: {r.name}\n{r.nmse_db:.2f} dB, {r.p99_us:.0f} us",
                        (r.p99_us, r.nmse), xytext=(18, -34), textcoords="offset points",
                        fontsize=8, arrowprops={"arrowstyle": "->", "color": "black"})
    xs = [r.p99_us for r in results] + [budget_us]
    if max(xs) / min(xs) > 10:
        ax.set_xscale("log")
    ax.margins(x=0.08, y=0.2)
    ax.set_xlabel("ONNX Runtime p99 latency (us, batch 1, 1 thread)")
    ax.set_ylabel("NMSE (dB, lower is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return path
