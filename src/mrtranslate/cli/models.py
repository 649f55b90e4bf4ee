"""``mrtranslate models`` and ``mrtranslate train``."""

from __future__ import annotations

import argparse
import os

from mrtranslate.cli.parser import add_device, add_overrides, add_precision
from mrtranslate.config import PROFILES
from mrtranslate.methods import names, specs


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser(
        "models",
        help="list the models with the parameter count of each network",
        description="List the registered models (the paper's five) with the parameter "
        "count of each network (at the paper's configuration). Each model owns its net.* and "
        "loss.* settings; --settings lists them (train.* is the same for every model).",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.add_argument(
        "--profile",
        choices=PROFILES,
        default="paper",
        help="configuration whose networks are counted (default paper)",
    )
    models.add_argument(
        "--settings",
        action="store_true",
        help="also list each model's own net.* and loss.* settings with their values under "
        "--profile (the keys --set reaches for that model)",
    )
    models.set_defaults(func=run_models)

    train = sub.add_parser(
        "train",
        help="train a model on a data set",
        description="Train a model. Unpaired models ("
        + ", ".join(s.name for s in specs() if not s.paired)
        + ") draw T1w and T2w slices of different subjects at each step; supervised ones ("
        + ", ".join(s.name for s in specs() if s.paired)
        + ") use the pairs. Distributed: torchrun --nproc_per_node N -m mrtranslate train ...",
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
    add_overrides(train)
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_precision(train)
    add_device(train, default=None)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=run_train)


def run_models(args: argparse.Namespace) -> int:
    from dataclasses import asdict

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
                "settings": {
                    f"{section}.{key}": value
                    for section in ("net", "loss")
                    for key, value in asdict(getattr(cfg, section)).items()
                },
            }
        )
    if args.json:
        print(to_json(rows))
        return 0
    for row in rows:
        print(f"{row['display_name']:<13} {row['training']:<20} total {row['total']:>10,}")
        for net, count in row["networks"].items():
            print(f"    {net:<12} {count:>12,}")
        if args.settings:
            values = ", ".join(f"{k}={v}" for k, v in row["settings"].items())
            print(f"    settings ({args.profile}): {values}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from mrtranslate.training.run import RunRequest, train_run

    request = RunRequest(
        profile=args.profile,
        precision=args.precision or None,
        device=args.device or None,
        overrides=tuple(args.overrides),
    )
    record = train_run(
        args.model,
        args.data,
        args.out,
        resume=args.resume,
        progress=not args.quiet,
        request=request,
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    mean = record.mean_seconds_per_epoch
    timing = f", {mean:.1f} s/epoch" if mean else ""
    print(
        f"{record.display_name} trained: {record.steps_done} steps{timing}; run folder {args.out}"
    )
    return 0
