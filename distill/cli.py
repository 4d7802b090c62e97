"""``kdran teacher {train,adapt,validate}``, ``kdran distill`` and ``kdran job run``.

Nothing heavy is imported at module level: torch, ONNX Runtime and Sionna load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from csi.presets import PRESETS, get_preset
from distill.gates import GateConfig

_FORMATTER = argparse.ArgumentDefaultsHelpFormatter
_DATA_ROOT_HELP = "dataset cache directory (kdran data); sets are generated there on a miss"


def _preset_arg(parser: argparse.ArgumentParser) -> None:
    """The required ``--preset`` of every teacher/distill command."""
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS),
                        default=argparse.SUPPRESS, help="task preset")


def _data_root_arg(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """``--data-root`` (and ``aliases``): the dataset cache, the data package's default when
    left out."""
    parser.add_argument("--data-root", *aliases, type=Path, default=None,
                        help=_DATA_ROOT_HELP + " (None: the data package default)")


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``teacher``, ``distill`` and ``job``; ``bench`` is unused here."""
    del bench
    _register_teacher(commands)
    _register_distill(commands)
    _register_search(commands)
    _register_orders(commands)
    _register_ablate(commands)
    _register_robust(commands)
    _register_job(commands)


def _register_teacher(commands: argparse._SubParsersAction) -> None:
    teacher = commands.add_parser(
        "teacher", help="train or adapt the channel foundation model (teacher)",
        description="The WiFo-style teacher: masked-autoencoder pretraining, prediction "
                    "training, and adaptation to recent site data.", formatter_class=_FORMATTER)
    actions = teacher.add_subparsers(dest="teacher_command", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train", help="pretrain (MAE) and train a teacher for a preset",
        description="Pretrain with random/time/frequency masks, then train prediction, on the "
                    "preset's train split (val split for the metric). Writes a resumable "
                    "checkpoint OUT.ckpt after every epoch and resumes from it; prints a final "
                    "metrics line.", formatter_class=_FORMATTER)
    _preset_arg(train)
    train.add_argument("--data-root", type=Path, default=None,
                       help=_DATA_ROOT_HELP + " (None: the data package default, env KDRAN_DATA)")
    train.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS,
                       help="teacher checkpoint to write (.pt)")
    train.add_argument("--pretrain-epochs", type=int, default=None,
                       help="MAE epochs (None: preset schedule)")
    train.add_argument("--predict-epochs", type=int, default=None,
                       help="prediction epochs (None: preset schedule)")
    train.add_argument("--batch-size", type=int, default=None, help="(None: preset schedule)")
    train.add_argument("--lr", type=float, default=None, help="(None: preset schedule)")
    train.add_argument("--seed", type=int, default=None, help="(None: preset schedule)")
    train.add_argument("--train-fraction", type=float, default=1.0,
                       help="seeded fraction of the train split to use (e.g. 0.25 for a quick run)")
    train.add_argument("--fresh", action="store_true",
                       help="ignore and delete an existing OUT.ckpt instead of resuming")
    _common(train)
    train.set_defaults(func=_teacher_train)

    adapt = actions.add_parser(
        "adapt", help="fine-tune a teacher on recent site data",
        description="Fine-tune the prediction task of TEACHER on a ChannelSet directory (the "
                    "format the xApp exports) with a small learning rate; 20 %% of the data is "
                    "held back for the reported validation NMSE.", formatter_class=_FORMATTER)
    adapt.add_argument("--teacher", type=Path, required=True, default=argparse.SUPPRESS,
                       help="base teacher checkpoint")
    adapt.add_argument("--data", type=Path, required=True, default=argparse.SUPPRESS,
                       help="ChannelSet directory with the recent data")
    adapt.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS,
                       help="adapted teacher checkpoint to write")
    adapt.add_argument("--epochs", type=int, default=None, help="(None: 3)")
    adapt.add_argument("--lr", type=float, default=None, help="(None: 2e-4)")
    _common(adapt)
    adapt.set_defaults(func=_teacher_adapt)
    _register_teacher_validate(actions)


def _register_teacher_validate(actions: argparse._SubParsersAction) -> None:
    validate = actions.add_parser(
        "validate", help="check that a teacher may teach (beats baselines, calibrated beams)",
        description="The teacher must beat outdated CSI, AR/Wiener and Kalman (NMSE) on the "
                    "test set and on every held-out set; its beam head's expected calibration "
                    "error (top-1, 15 bins, test set) is measured and, above the threshold, a "
                    "temperature is fitted on the val set. Prints the verdict table, writes "
                    "TEACHER.validation.json (required by kdran job run) and a reliability plot. "
                    "Exit code 0 = passed, 3 = failed, 2 = error.", formatter_class=_FORMATTER)
    validate.add_argument("--teacher", type=Path, required=True, default=argparse.SUPPRESS,
                          help="teacher checkpoint")
    _preset_arg(validate)
    _data_root_arg(validate)
    validate.add_argument("--sets", type=_names, default="test,heldout-profile",
                          help="comma list of splits to beat the baselines on: 'test' and at "
                               "least one held-out split")
    validate.add_argument("--plot", type=Path, default=None,
                          help="reliability plot PNG (None: TEACHER.reliability.png)")
    validate.add_argument("--json", type=Path, default=None,
                          help="also write the verdict JSON here")
    validate.add_argument("--ece-threshold", type=float, default=0.05,
                          help="largest acceptable beam-head ECE (after temperature scaling)")
    _common(validate)
    validate.set_defaults(func=_teacher_validate)


def _register_distill(commands: argparse._SubParsersAction) -> None:
    distill = commands.add_parser(
        "distill", help="KD -> prune -> recover -> export -> INT8 -> gates -> artifact",
        description="Distill a student from TEACHER on the preset's train split, prune and "
                    "recover it, export ONNX, quantize to INT8, run the gates on the test split "
                    "and publish OUT/artifact when all pass. Also trains student_scratch (same "
                    "size and data, no KD) for the benchmark. Prints the stage table. Exit code "
                    "0 = published, 3 = gates failed, 2 = error.", formatter_class=_FORMATTER)
    _preset_arg(distill)
    distill.add_argument("--teacher", type=Path, required=True, default=argparse.SUPPRESS,
                         help="teacher checkpoint (kdran teacher train)")
    distill.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS,
                         help="run directory")
    _data_root_arg(distill)
    for name, what in (("task", "ground-truth NMSE loss"), ("output", "output distillation"),
                       ("feature", "feature distillation (cross-attention selector)"),
                       ("relation", "attention-relation distillation"),
                       ("beam-kd", "beam KL to the teacher (CE to the best beam stays)"),
                       ("adaptive", "adaptive imitation/own-learning schedule")):
        distill.add_argument(f"--no-{name}", action="store_true", help=f"switch off {what}")
    distill.add_argument("--temperature", type=float, default=4.0, help="beam KD temperature")
    distill.add_argument("--temperature-sweep", type=_floats, default=None,
                         help="comma list, e.g. 2,4,6,8: pick T by validation beam KL")
    distill.add_argument("--sweep-epochs", type=int, default=None,
                         help="student epochs per swept temperature (None: epochs / 3)")
    distill.add_argument("--low-data", type=float, default=1.0,
                         help="fraction of the training data to use (e.g. 0.1)")
    distill.add_argument("--noisy-labels", action="store_true",
                         help="site data: the students learn from SRS estimates of the future, "
                              "never the clean channel (the teacher is as given)")
    distill.add_argument("--epochs", type=int, default=None, help="student epochs (None: preset)")
    distill.add_argument("--recover-epochs", type=int, default=None,
                         help="KD recovery epochs after pruning (None: epochs / 3)")
    distill.add_argument("--head-keep", type=float, default=0.5, help="fraction of heads kept")
    distill.add_argument("--mlp-keep", type=float, default=0.5,
                         help="fraction of MLP channels kept")
    distill.add_argument("--min-retention", type=float, default=0.98, help="retention gate")
    distill.add_argument("--max-p99-us", type=float, default=None,
                         help="latency gate: ONNX Runtime p99 budget in µs on this machine "
                              "(None: the preset's deployment budget, distill.budgets; raise it "
                              "where this machine is slower than the DU's core)")
    distill.add_argument("--must-beat", type=lambda s: tuple(s.split(",")) if s else (),
                         default=("ar",), help="baselines the student must beat (comma list)")
    distill.add_argument("--deployed", type=Path, default=None,
                         help="ONNX of the deployed model: the student must be no worse")
    distill.add_argument("--signing-key", type=Path,
                         default=os.environ.get("KDRAN_SIGNING_KEY") or None,
                         help="Ed25519 private key PEM (kdran keys generate) that signs the "
                              "artifact; env KDRAN_SIGNING_KEY")
    distill.add_argument("--int8", choices=("dynamic", "static"), default="dynamic",
                         help="INT8 quantization of the published student: dynamic (activations "
                              "quantized per call; faster here) or static (QDQ, ranges "
                              "calibrated on training sequences)")
    distill.add_argument("--no-scratch", action="store_true",
                         help="skip training student_scratch")
    distill.add_argument("--json", type=Path, default=None, help="also write result JSON here")
    _common(distill)
    distill.set_defaults(func=_distill)


class _DistillActions(argparse._SubParsersAction):
    """The actions under ``kdran distill`` (``search``, ...). The plain ``kdran distill`` run keeps
    its required options; choosing an action releases them, as they belong to the plain run."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        for action in parser._actions:
            action.required = False
        super().__call__(parser, namespace, values, option_string)


def _distill_actions(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The subparsers action of ``kdran distill`` (created on first use)."""
    distill: argparse.ArgumentParser = commands.choices["distill"]
    for action in distill._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return distill.add_subparsers(dest="distill_action", metavar="ACTION",
                                  action=_DistillActions, required=False)


def _register_search(commands: argparse._SubParsersAction) -> None:
    search = _distill_actions(commands).add_parser(
        "search", help="hardware-aware student search: latency here, accuracy after short KD",
        description="Search student shapes (width, depth, heads, head width, MLP width, patch "
                    "size, time features, AR prior order and fit RB stride): export and time "
                    "every candidate with ONNX Runtime on this machine (batch 1, one thread), "
                    "distill those whose p50 is within "
                    "SKIP_FACTOR x the budget briefly from TEACHER, score NMSE on the val (or "
                    "test) split, rank by NMSE dB + PENALTY * log2(params), mark the NMSE-vs-p99 "
                    "Pareto front and pick the most accurate candidate within the p99 budget. "
                    "Writes OUT/search.json, the plot and the trained candidates (OUT/students). "
                    "Exit code 0 = a candidate fits, 3 = none fits, 2 = error.",
        formatter_class=_FORMATTER)
    _preset_arg(search)
    search.add_argument("--teacher", type=Path, required=True, default=argparse.SUPPRESS,
                        help="teacher checkpoint (kdran teacher train)")
    search.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS,
                        help="search directory")
    _data_root_arg(search, "--data")
    search.add_argument("--budget-us", type=float, default=None,
                        help="p99 latency budget in us (None: the preset's deployment budget)")
    search.add_argument("--candidates", type=int, default=8, help="number of candidates")
    search.add_argument("--epochs", type=int, default=1, help="KD epochs per candidate")
    search.add_argument("--train-fraction", type=float, default=0.25,
                        help="seeded fraction of the train split used for the short KD")
    search.add_argument("--seed", type=int, default=0,
                        help="candidate sampling, data fraction and training seed")
    search.add_argument("--penalty", "--lambda", type=float, default=0.5,
                        help="objective = NMSE dB + PENALTY * log2(params): dB per doubling")
    search.add_argument("--pick-by", choices=("nmse", "objective"), default="nmse",
                        help="within the budget pick the lowest NMSE or the lowest objective")
    search.add_argument("--skip-factor", type=float, default=3.0,
                        help="do not train candidates whose p50 is above this many budgets")
    search.add_argument("--int8", action="store_true",
                        help="time and score the INT8-quantized models instead of fp32")
    search.add_argument("--score-set", choices=("val", "test"), default="val",
                        help="split the NMSE is measured on")
    search.add_argument("--latency-runs", type=int, default=300,
                        help="timed ONNX Runtime runs per candidate")
    search.add_argument("--json", type=Path, default=None,
                        help="also write the result JSON here (always OUT/search.json)")
    search.add_argument("--plot", type=Path, default=None,
                        help="Pareto plot PNG (None: OUT/search.png)")
    _common(search)
    search.set_defaults(func=_search)


def _register_orders(commands: argparse._SubParsersAction) -> None:
    orders = _distill_actions(commands).add_parser(
        "orders", help="compare compression orders: KD->prune->INT8 vs QAT orders",
        description="From the same KD-distilled student (a run's student_kd.pt) and TEACHER, run "
                    "the compression orders A (prune -> KD recovery -> INT8 post-training), B "
                    "(prune -> fake-quant -> quantisation-aware KD recovery -> INT8) and C "
                    "(fake-quant -> prune -> quantisation-aware KD recovery -> INT8) with the "
                    "same recovery schedule, data and calibration slice (every order ends with "
                    "static, calibrated INT8: what the fake-quant training mimics; kdran distill "
                    "publishes dynamic INT8 by default); measure each INT8 ONNX "
                    "(params, FLOPs, size, test NMSE overall and per speed bin, ORT p50/p99, wall "
                    "times). "
                    "Prints the table, writes OUT/orders.json. Exit code 0 = done, 2 = error.",
        formatter_class=_FORMATTER)
    _preset_arg(orders)
    orders.add_argument("--teacher", type=Path, required=True, default=argparse.SUPPRESS,
                        help="teacher checkpoint the student was distilled from")
    orders.add_argument("--student-kd", type=Path, required=True, default=argparse.SUPPRESS,
                        help="KD-distilled student (a kdran distill run's student_kd.pt)")
    orders.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS,
                        help="output directory (order_X/ models, orders.json)")
    _data_root_arg(orders, "--data")
    orders.add_argument("--orders", type=_names, default="A,B,C", help="comma list of orders")
    orders.add_argument("--epochs", type=int, default=None,
                        help="student epochs the default recovery is a third of (None: preset)")
    orders.add_argument("--recover-epochs", type=int, default=None,
                        help="KD recovery epochs of every order (None: epochs / 3, as kdran "
                             "distill)")
    orders.add_argument("--train-fraction", type=float, default=1.0,
                        help="seeded fraction of the train split used for the recovery")
    orders.add_argument("--head-keep", type=float, default=0.5, help="fraction of heads kept")
    orders.add_argument("--mlp-keep", type=float, default=0.5,
                        help="fraction of MLP channels kept")
    orders.add_argument("--per-tensor", action="store_true",
                        help="fake-quantise weights per tensor (default per channel, as the INT8 "
                             "export does)")
    orders.add_argument("--calibration-size", type=int, default=128,
                        help="training sequences in the calibration slice")
    orders.add_argument("--latency-runs", type=int, default=300,
                        help="timed ONNX Runtime runs per order")
    orders.add_argument("--json", type=Path, default=None,
                        help="also write the result JSON here (always OUT/orders.json)")
    _common(orders)
    orders.set_defaults(func=_orders)


def _register_job(commands: argparse._SubParsersAction) -> None:
    job = commands.add_parser("job", help="the re-distillation job entry point",
                              description="Jobs launched by the xApp.", formatter_class=_FORMATTER)
    actions = job.add_subparsers(dest="job_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run", help="adapt the teacher, distill, gate, publish (see distill.job)",
        description="Run the re-distillation job of SPEC (JSON: data_dir, teacher, preset, "
                    "output_dir, optional gates/deployed_model/...). Prints phase=... lines; "
                    "writes OUTPUT_DIR/result.json. Exit code 0 = published, 3 = gates failed, "
                    "2 = bad spec or error.", formatter_class=_FORMATTER)
    run.add_argument("--spec", type=Path, required=True, default=argparse.SUPPRESS,
                     help="job spec JSON file")
    run.add_argument("--progress", action="store_true", help="show progress bars")
    run.add_argument("--threads", type=int, default=None,
                     help="torch intra-op threads (None: env KDRAN_TORCH_THREADS or 1)")
    run.set_defaults(func=_job_run)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (None: env KDRAN_TORCH_THREADS or 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"temperatures must be positive numbers, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma list of split names, got {text!r}")
    return names


def _threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        import os

        from distill.runtime import THREADS_ENV

        os.environ[THREADS_ENV] = str(args.threads)


def _splits(preset_name: str, root: Path | None, names: tuple[str, ...]) -> list[Any]:
    from distill.data import DEFAULT_ROOT, load_or_generate

    preset = get_preset(preset_name)
    return [load_or_generate(preset, name, root or DEFAULT_ROOT) for name in names]


def _teacher_train(args: argparse.Namespace) -> int:
    from distill.train import default_schedule, progress_checkpoint, train_teacher

    _threads(args)
    preset = get_preset(args.preset)
    schedule = default_schedule(preset, pretrain_epochs=args.pretrain_epochs,
                                predict_epochs=args.predict_epochs, batch_size=args.batch_size,
                                lr=args.lr, seed=args.seed)
    if args.fresh:
        progress_checkpoint(args.out).unlink(missing_ok=True)
    elif progress_checkpoint(args.out).exists():
        print(f"resuming from {progress_checkpoint(args.out)}")
    train, val = _splits(args.preset, args.data_root, ("train", "val"))
    if not 0.0 < args.train_fraction <= 1.0:
        print(f"error: --train-fraction must be in (0, 1], got {args.train_fraction}",
              file=sys.stderr)
        return 2
    if args.train_fraction < 1.0:
        import numpy as np

        keep = round(args.train_fraction * len(train))
        train = train.subset(np.sort(np.random.default_rng(schedule.seed).permutation(
            len(train))[:max(1, keep)]))
    report = train_teacher(preset, train, val, args.out, schedule, progress=not args.quiet)
    print(report.line())
    return 0


def _teacher_adapt(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from csi.dataset import ChannelSet
    from distill.train import ADAPT_SCHEDULE, adapt_teacher

    _threads(args)
    schedule = replace(ADAPT_SCHEDULE, **{k: v for k, v in (("predict_epochs", args.epochs),
                                                            ("lr", args.lr)) if v is not None})
    try:
        data = ChannelSet.load(args.data)
        report = adapt_teacher(args.teacher, data, args.out, schedule, progress=not args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.line())
    return 0


def _teacher_validate(args: argparse.Namespace) -> int:
    from distill.validate import (
        ValidationOptions,
        check_set_names,
        format_verdict,
        plot_reliability,
        validate_teacher,
        verdict_path,
    )

    _threads(args)
    preset = get_preset(args.preset)
    try:
        options = ValidationOptions(ece_threshold=args.ece_threshold)
        check_set_names(args.sets)
        if not args.teacher.is_file():
            raise FileNotFoundError(f"no teacher checkpoint at {args.teacher}")
        *loaded, val = _splits(args.preset, args.data_root, (*args.sets, "val"))
        verdict = validate_teacher(args.teacher, preset, dict(zip(args.sets, loaded, strict=True)),
                                   val, options)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_verdict(verdict))
    written = [verdict.write(verdict_path(args.teacher))]
    if args.json is not None:
        written.append(verdict.write(args.json))
    plot = args.plot or args.teacher.with_name(args.teacher.name + ".reliability.png")
    written.append(plot_reliability(verdict.calibration, plot,
                                    f"{args.teacher.name}: beam-head reliability"))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0 if verdict.passed else 3


def gate_config(args: argparse.Namespace) -> GateConfig:
    """The publication gates of ``kdran distill`` from its arguments."""
    return GateConfig(min_retention=args.min_retention, must_beat=args.must_beat,
                      max_p99_us=args.max_p99_us)


def _distill(args: argparse.Namespace) -> int:
    from distill.kd import student_schedule
    from distill.losses import KdConfig
    from distill.pipeline import DistillOptions, Sets, format_stage_table, run_distillation
    from distill.prune import PruneConfig

    _threads(args)
    preset = get_preset(args.preset)
    began = time.perf_counter()
    try:
        kd = KdConfig(task=not args.no_task, output=not args.no_output,
                      feature=not args.no_feature, relation=not args.no_relation,
                      beam=not args.no_beam_kd, adaptive=not args.no_adaptive,
                      temperature=args.temperature)
        options = DistillOptions(
            kd=kd, schedule=student_schedule(preset, epochs=args.epochs),
            recover_epochs=args.recover_epochs, prune=PruneConfig(args.head_keep, args.mlp_keep),
            temperatures=args.temperature_sweep or (), sweep_epochs=args.sweep_epochs,
            low_data=args.low_data, noisy_labels=args.noisy_labels,
            gates=gate_config(args),
            deployed_model=args.deployed, signing_key=args.signing_key,
            train_scratch=not args.no_scratch, int8_mode=args.int8,
            progress=not args.quiet)
        sets = Sets(*_splits(args.preset, args.data_root, ("train", "val", "test")))
        result = run_distillation(preset, args.teacher, sets, args.out, options,
                                  on_phase=lambda name: print(f"phase={name}", flush=True))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_stage_table(result.stages))
    for gate in result.gates:
        print(f"gate {gate.name:<12} {'PASS' if gate.passed else 'FAIL'}  {gate.reason}")
    for label, report in result.training.items():
        if report["teacher_passes"] or report["teacher_passes_saved"]:
            print(f"{label}: teacher forward passes {report['teacher_passes']}, "
                  f"saved by the adaptive schedule {report['teacher_passes_saved']}")
    if result.temperature_sweep:
        print(f"temperature sweep (val beam KL): {result.temperature_sweep} -> "
              f"T={result.temperature:g}")
    print(f"{'published ' + str(result.artifact) if result.ok else 'NOT published'}: "
          f"{result.reason} (wall {time.perf_counter() - began:.0f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return 0 if result.ok else 3


def _job_run(args: argparse.Namespace) -> int:
    from distill.job import EXIT_ERROR, SpecError, load_spec, run_job

    _threads(args)
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(f"phase=failed bad job spec: {exc}", flush=True)
        return EXIT_ERROR
    return run_job(spec, progress=args.progress)


def _search(args: argparse.Namespace) -> int:
    from distill.budgets import budget_for
    from distill.reports import write_json
    from distill.search import SearchOptions, format_table, plot_front, run_search

    _threads(args)
    preset = get_preset(args.preset)
    try:
        budget = args.budget_us if args.budget_us is not None else budget_for(preset).p99_us
        options = SearchOptions(
            budget_us=budget, candidates=args.candidates, epochs=args.epochs,
            train_fraction=args.train_fraction, seed=args.seed, penalty=args.penalty,
            skip_factor=args.skip_factor, int8=args.int8, score_set=args.score_set,
            pick_by=args.pick_by, latency_runs=args.latency_runs, progress=not args.quiet)
        if not args.teacher.is_file():
            raise FileNotFoundError(f"no teacher checkpoint at {args.teacher}")
        names = ("train", "val", "test") if args.score_set == "test" else ("train", "val")
        splits = _splits(args.preset, args.data_root, names)
        result = run_search(preset, args.teacher, splits[0], splits[1], args.out, options,
                            log=lambda line: print(line, flush=True),
                            test=splits[2] if len(splits) > 2 else None)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(result.candidates, budget))
    print("flags: F = Pareto front (NMSE vs p99), > = p99 over budget, * = pick")
    plot = plot_front(result.candidates, budget, args.plot or args.out / "search.png",
                      f"kdran {preset.name}: student search ({result.objective})")
    written = [args.out / "search.json", plot]
    if args.json is not None:
        written.append(write_json(result, args.json))
    print("wrote " + ", ".join(str(p) for p in written))
    print(result.message)
    return 0 if result.chosen is not None else 3


def _orders(args: argparse.Namespace) -> int:
    from distill.kd import student_schedule
    from distill.orders import OrdersOptions, format_orders_table, run_orders
    from distill.pipeline import Sets
    from distill.prune import PruneConfig
    from distill.qat import QatConfig
    from distill.reports import write_json

    _threads(args)
    preset = get_preset(args.preset)
    try:
        options = OrdersOptions(
            orders=args.orders, prune=PruneConfig(args.head_keep, args.mlp_keep),
            qat=QatConfig(per_channel=not args.per_tensor),
            schedule=student_schedule(preset, epochs=args.epochs),
            recover_epochs=args.recover_epochs, train_fraction=args.train_fraction,
            calibration_size=args.calibration_size, latency_runs=args.latency_runs,
            progress=not args.quiet)
        for path, what in ((args.teacher, "teacher"), (args.student_kd, "student")):
            if not path.is_file():
                raise FileNotFoundError(f"no {what} checkpoint at {path}")
        sets = Sets(*_splits(args.preset, args.data_root, ("train", "val", "test")))
        result = run_orders(preset, args.teacher, args.student_kd, sets, args.out, options,
                            on_order=lambda name: print(f"order={name}", flush=True))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_orders_table(result))
    written = [args.out / "orders.json"]
    if args.json is not None:
        written.append(write_json(result, args.json))
    print("wrote " + ", ".join(str(p) for p in written) + f" (wall {result.wall_s:.0f} s)")
    return 0


def _register_ablate(commands: argparse._SubParsersAction) -> None:
    ablate = _distill_actions(commands).add_parser(
        "ablate", help="KD ablation: what each distillation component buys",
        description="Train the same student (size, data, seed, schedule) as: scratch (no "
                    "teacher), full (every KD component), full minus one component (output, "
                    "feature, relation, beam-kd, adaptive) and output-only (task + output KD); "
                    "score each on the test split (NMSE overall and per speed bin, beam top-1) "
                    "with teacher forward passes used/saved and training time, next to the "
                    "classical baselines and the teacher. Prints the table with the deltas vs "
                    "full and vs scratch, writes OUT/ablation.json and the students. Exit code "
                    "0 = done, 2 = error.", formatter_class=_FORMATTER)
    _preset_arg(ablate)
    ablate.add_argument("--teacher", type=Path, required=True, default=argparse.SUPPRESS,
                        help="teacher checkpoint (kdran teacher train)")
    ablate.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS,
                        help="output directory (students, ablation.json)")
    _data_root_arg(ablate, "--data")
    ablate.add_argument("--components", nargs="*", default=None,
                        help="variants besides scratch and full (which always run), space or "
                             "comma separated: output feature relation beam-kd adaptive (each "
                             "left out of full) and output-only (None: all of them)")
    ablate.add_argument("--epochs", type=int, default=None, help="student epochs (None: preset)")
    ablate.add_argument("--low-data", "--train-fraction", dest="low_data", type=float,
                        default=1.0, help="seeded fraction of the train split (e.g. 0.25)")
    ablate.add_argument("--noisy-labels", action="store_true",
                        help="the field setting: students learn from SRS estimates of the "
                             "future, never the clean channel (with --low-data 0.1: what a "
                             "re-distillation on a live site has)")
    ablate.add_argument("--temperature", type=float, default=4.0, help="beam KD temperature")
    ablate.add_argument("--seed", type=int, default=None,
                        help="training and data-fraction seed (None: preset schedule)")
    ablate.add_argument("--json", type=Path, default=None,
                        help="also write the result JSON here (always OUT/ablation.json)")
    _common(ablate)
    ablate.set_defaults(func=_ablate)


def _ablate(args: argparse.Namespace) -> int:
    from distill.ablation import (
        SELECTABLE,
        AblationOptions,
        format_ablation_table,
        run_ablation,
    )
    from distill.kd import student_schedule
    from distill.losses import KdConfig
    from distill.pipeline import Sets
    from distill.reports import write_json

    _threads(args)
    preset = get_preset(args.preset)
    components = (SELECTABLE if args.components is None else
                  tuple(c for arg in args.components for c in arg.split(",") if c))
    try:
        options = AblationOptions(
            components=components, kd=KdConfig(temperature=args.temperature),
            schedule=student_schedule(preset, epochs=args.epochs, seed=args.seed),
            low_data=args.low_data, noisy_labels=args.noisy_labels, progress=not args.quiet)
        if not args.teacher.is_file():
            raise FileNotFoundError(f"no teacher checkpoint at {args.teacher}")
        sets = Sets(*_splits(args.preset, args.data_root, ("train", "val", "test")))
        result = run_ablation(preset, args.teacher, sets, args.out, options,
                              log=lambda line: print(line, flush=True))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_ablation_table(result))
    written = [args.out / "ablation.json"]
    if args.json is not None:
        written.append(write_json(result, args.json))
    print("wrote " + ", ".join(str(p) for p in written) + f" (wall {result.wall_s:.0f} s)")
    return 0


def _register_robust(commands: argparse._SubParsersAction) -> None:
    robust = _distill_actions(commands).add_parser(
        "robust", help="add the robust-distillation stage student_robust to a distill run",
        description="Train student_robust in the run directory OUT: a student of the default "
                    "size (same schedule and seed as the run's students) distilled from TEACHER "
                    "with the KD configuration of OUT/student_kd.pt (default KD without it), but "
                    "fed SRS histories re-noised per sequence at an SNR drawn uniformly from "
                    "SNR_DB (dB) while the teacher's targets come from the noiseless history. "
                    "Saves OUT/student_robust.pt, exports OUT/onnx/student_robust.onnx (fp32), "
                    "scores and times it on the test split, prints the run's stage table with "
                    "it and writes OUT/robust.json. Never published; kdran bench accuracy "
                    "--robustness --run OUT compares it with student_kd. Exit code 0 = done, "
                    "2 = error.", formatter_class=_FORMATTER)
    _preset_arg(robust)
    robust.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS,
                        help="run directory (kdran distill --out)")
    robust.add_argument("--teacher", type=Path, default=None,
                        help="teacher checkpoint, the run's own (None: OUT/teacher.pt)")
    _data_root_arg(robust, "--data")
    robust.add_argument("--snr-db", "--robust-snr-db", dest="snr_db", default="0,10",
                        help="LO,HI: range (dB) of the student's SRS SNR")
    robust.add_argument("--epochs", type=int, default=None, help="student epochs (None: preset)")
    robust.add_argument("--low-data", "--train-fraction", dest="low_data", type=float,
                        default=1.0, help="seeded fraction of the train split")
    robust.add_argument("--latency-runs", type=int, default=300,
                        help="timed ONNX Runtime runs for the stage row")
    robust.add_argument("--json", type=Path, default=None,
                        help="also write the result JSON here (always OUT/robust.json)")
    _common(robust)
    robust.set_defaults(func=_robust)


def _robust(args: argparse.Namespace) -> int:
    from distill.kd import student_schedule
    from distill.pipeline import Sets, format_stage_table
    from distill.reports import write_json
    from distill.robust import RESULT_FILE, RobustOptions, parse_snr_range, run_robust_stage

    _threads(args)
    preset = get_preset(args.preset)
    teacher = args.teacher or args.out / "teacher.pt"
    try:
        options = RobustOptions(
            snr_db=parse_snr_range(args.snr_db),
            schedule=student_schedule(preset, epochs=args.epochs), low_data=args.low_data,
            latency_runs=args.latency_runs, progress=not args.quiet)
        if not teacher.is_file():
            raise FileNotFoundError(f"no teacher checkpoint at {teacher}")
        sets = Sets(*_splits(args.preset, args.data_root, ("train", "val", "test")))
        result = run_robust_stage(preset, teacher, sets, args.out, options,
                                  log=lambda line: print(line, flush=True))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_stage_table(result.stages))
    written = [args.out / RESULT_FILE]
    if args.json is not None:
        written.append(write_json(result, args.json))
    print("wrote " + ", ".join(str(p) for p in written) + f" (wall {result.wall_s:.0f} s); "
          f"compare over SNR and speed: kdran bench accuracy --robustness --preset {preset.name} "
          f"--run {args.out}")
    return 0
