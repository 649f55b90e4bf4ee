"""CLI commands for models and training: ``mrtranslate models`` and ``mrtranslate train``."""

from __future__ import annotations

import argparse
import os

from mrtranslate.config import PRECISIONS, PROFILES
from mrtranslate.methods import names


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser(
        "models",
        help="list the models with the parameter count of each network",
        description="List the five models of the paper with the parameter "
        "count of each network (at the paper's configuration).",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.add_argument(
        "--profile",
        choices=PROFILES,
        default="paper",
        help="configuration whose networks are counted (default paper)",
    )

    train = sub.add_parser(
        "train",
        help="train a model on a data set",
        description="Train one of the five models. Unpaired models (cyclegan, unit) draw T1w and "
        "T2w slices of different subjects at each step; supervised ones (cyclegan_s, "
        "generators_s, simple) use the pairs. Distributed: torchrun --nproc_per_node N -m "
        "mrtranslate train ...",
    )
    train.add_argument("--model", required=True, choices=names())
    train.add_argument("--data", required=True, help="data-set folder (see 'mrtranslate data')")
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="paper: the paper's settings; quick: CPU default (default); tiny: tests",
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. train.epochs=3 "
        "(repeatable; unknown keys and wrong types are rejected)",
    )
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="shortcut for --set train.precision=... (default auto: bf16 where natively fast)",
    )
    train.add_argument("--device", help="shortcut for --set train.device=... (auto, cpu, cuda)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def register_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench",
        help="benchmark training and inference speed (JSON with --json)",
        description="Per model and precision: training images/s (median of repeated full "
        "training steps after warm-up, with the spread), inference images/s at batch 1 and 16, "
        "FLOPs per training step and per image (torch.utils.flop_counter), achieved GFLOP/s and "
        "the fraction of this machine's measured conv peak. Uses random data at the paper's "
        "network configuration; needs no data set.",
    )
    bench.add_argument(
        "--models",
        nargs="+",
        choices=names(),
        default=["cyclegan", "unit"],
        help="models to benchmark (default: cyclegan unit)",
    )
    bench.add_argument("--size", default="256", help="image size N or HxW (default 256)")
    bench.add_argument("--batch", type=int, default=1, help="training batch (default 1)")
    bench.add_argument(
        "--precision",
        default="fp32,bf16",
        help="comma-separated precisions (default fp32,bf16; bf16 is skipped with a note where "
        "it is not native)",
    )
    bench.add_argument("--repeats", type=int, default=5, help="timed steps (default 5)")
    bench.add_argument("--threads", type=int, default=0, help="torch threads (default: all)")
    bench.add_argument(
        "--channels-last",
        action="store_true",
        help="NHWC (channels-last) memory format instead of the default NCHW (to measure it)",
    )
    bench.add_argument("--compile", action="store_true", help="torch.compile the networks")
    bench.add_argument(
        "--metrics-images",
        type=int,
        default=2130,
        help="image pairs for the evaluation-measure timing (default 2130 = 213 "
        "test images x 5 models x 2 directions)",
    )
    bench.add_argument(
        "--device",
        default="auto",
        help="auto (a GPU when available, else the CPU; default), cpu, cuda or cuda:N",
    )
    bench.add_argument("--json", help="also write the results as JSON to this file")


def run_bench(args: argparse.Namespace) -> int:
    import sys

    import torch

    from mrtranslate.bench import format_table
    from mrtranslate.bench import run_bench as bench
    from mrtranslate.errors import UsageError
    from mrtranslate.fileio import write_json_atomic

    try:
        parts = [int(v) for v in args.size.lower().split("x")]
    except ValueError:
        raise UsageError(f"--size must look like 256 or 304x256, got {args.size!r}") from None
    size = (parts[0], parts[-1])
    if len(parts) > 2 or min(size) < 32 or size[0] % 4 or size[1] % 4:
        raise UsageError(f"--size must be >= 32 and divisible by 4, got {args.size}")
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if not precisions or any(p not in ("fp32", "bf16") for p in precisions):
        raise UsageError(f"--precision takes fp32 and/or bf16, got {args.precision!r}")
    if args.batch < 1 or args.repeats < 1 or args.threads < 0:
        raise UsageError("--batch and --repeats must be positive and --threads >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    report = bench(
        args.models,
        precisions,
        size,
        args.batch,
        args.repeats,
        channels_last=args.channels_last,
        compile_nets=args.compile,
        progress=lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True),
        metrics_images=max(1, args.metrics_images),
        device=args.device,
    )
    print(format_table(report))
    if args.json:
        write_json_atomic(args.json, report)
        print(f"JSON written to {args.json}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    from mrtranslate.fileio import to_json
    from mrtranslate.methods import build_method, make_config, specs
    from mrtranslate.training.run import parameter_counts

    rows = []
    for spec in specs():
        name = spec.name
        cfg = make_config(name, args.profile)
        method = build_method(name, cfg.net, cfg.loss, (32, 32))
        counts = parameter_counts(method)
        rows.append(
            {
                "model": name,
                "display_name": spec.display_name,
                "training": "paired (supervised)" if method.paired else "unpaired",
                "networks": counts,
                "total": sum(counts.values()),
            }
        )
    if args.json:
        print(to_json(rows))
        return 0
    for row in rows:
        print(f"{row['display_name']:<13} {row['training']:<20} total {row['total']:>10,}")
        for net, count in row["networks"].items():
            print(f"    {net:<12} {count:>12,}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from mrtranslate.training.run import train_run

    overrides = list(args.overrides)
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    record = train_run(
        args.model,
        args.data,
        args.out,
        profile=args.profile,
        overrides=overrides,
        resume=args.resume,
        progress=not args.quiet,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    mean = record.get("mean_seconds_per_epoch")
    timing = f", {mean:.1f} s/epoch" if mean else ""
    print(
        f"{record['display_name']} trained: {record['steps_done']} steps{timing}; "
        f"run folder {args.out}"
    )
    return 0
