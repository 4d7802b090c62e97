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

_FORMATTER = argparse.ArgumentDefaultsHelpFormatter
_DATA_ROOT_HELP = "dataset cache directory (kdran data); sets are generated there on a miss"


def register(commands: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``teacher``, ``distill`` and ``job``; ``bench`` is unused here."""
    del bench
    _register_teacher(commands)
    _register_distill(commands)
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
    train.add_argument("--preset", required=True, choices=sorted(PRESETS),
                       default=argparse.SUPPRESS, help="task preset")
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
    validate.add_argument("--preset", required=True, choices=sorted(PRESETS),
                          default=argparse.SUPPRESS, help="task preset")
    validate.add_argument("--data-root", type=Path, default=None,
                          help=_DATA_ROOT_HELP + " (None: the data package default)")
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
    distill.add_argument("--preset", required=True, choices=sorted(PRESETS),
                         default=argparse.SUPPRESS, help="task preset")
    distill.add_argument("--teacher", type=Path, required=True, default=argparse.SUPPRESS,
                         help="teacher checkpoint (kdran teacher train)")
    distill.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS,
                         help="run directory")
    distill.add_argument("--data-root", type=Path, default=None,
                         help=_DATA_ROOT_HELP + " (None: the data package default)")
    for name, what in (("task", "ground-truth NMSE loss"), ("output", "output distillation"),
                       ("feature", "feature distillation (cross-attention selector)"),
                       ("relation", "attention-relation distillation"),
                       ("beam-kd", "beam KL to the teacher (CE to the best beam stays)"),
                       ("adaptive", "adaptive imitation/own-learning schedule")):
        distill.add_argument(f"--no-{name}", action="store_true", help=f"switch off {what}")
    distill.add_argument("--temperature", type=float, default=4.0, help="beam KD temperature")
    distill.add_argument("--temperature-sweep", type=_floats, default=None,
                         help="comma list, e.g. 2,4,6,8: pick T by validation beam KL")
    distill.add_argument("--low-data", type=float, default=1.0,
                         help="fraction of the training data to use (e.g. 0.1)")
    distill.add_argument("--epochs", type=int, default=None, help="student epochs (None: preset)")
    distill.add_argument("--recover-epochs", type=int, default=None,
                         help="KD recovery epochs after pruning (None: epochs / 3)")
    distill.add_argument("--head-keep", type=float, default=0.5, help="fraction of heads kept")
    distill.add_argument("--mlp-keep", type=float, default=0.5,
                         help="fraction of MLP channels kept")
    distill.add_argument("--min-retention", type=float, default=0.98, help="retention gate")
    distill.add_argument("--must-beat", type=lambda s: tuple(s.split(",")) if s else (),
                         default=("ar",), help="baselines the student must beat (comma list)")
    distill.add_argument("--deployed", type=Path, default=None,
                         help="ONNX of the deployed model: the student must be no worse")
    distill.add_argument("--signing-key", type=Path,
                         default=os.environ.get("KDRAN_SIGNING_KEY") or None,
                         help="Ed25519 private key PEM (kdran keys generate) that signs the "
                              "artifact; env KDRAN_SIGNING_KEY")
    distill.add_argument("--no-scratch", action="store_true",
                         help="skip training student_scratch")
    distill.add_argument("--json", type=Path, default=None, help="also write result JSON here")
    _common(distill)
    distill.set_defaults(func=_distill)


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


def _distill(args: argparse.Namespace) -> int:
    from distill.gates import GateConfig
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
            temperatures=args.temperature_sweep or (), low_data=args.low_data,
            gates=GateConfig(min_retention=args.min_retention, must_beat=args.must_beat),
            deployed_model=args.deployed, signing_key=args.signing_key,
            train_scratch=not args.no_scratch,
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
