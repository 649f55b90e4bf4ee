"""``mrtranslate bench``: training and inference speed, FLOPs and utilisation."""

from __future__ import annotations

import argparse

from mrtranslate.cli.parser import add_device
from mrtranslate.methods import names


def register(sub: argparse._SubParsersAction) -> None:
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
        "--conv-algorithm",
        choices=("both", "auto", "direct"),
        default="both",
        help="direct: PyTorch's own convolutions (the plain path, like the reference "
        "implementation); auto: per layer the fastest algorithm measured on this machine "
        "(direct, channels-last or Winograd); both (default): each model both ways, with the "
        "speed-up",
    )
    bench.add_argument(
        "--metrics-images",
        type=int,
        default=2130,
        help="image pairs for the evaluation-measure timing (default 2130 = 213 "
        "test images x 5 models x 2 directions)",
    )
    _add_volume_options(bench)
    add_device(bench)
    bench.add_argument("--json", help="also write the results as JSON to this file")
    bench.set_defaults(func=run_bench)


def _add_volume_options(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "--volume",
        action="store_true",
        help="instead: time translating one whole 240x240x155 volume (a brain-shaped "
        "ellipsoid) with the first --models model (default generators_s) trained on --crop "
        "crops, as translate and the study do (tiles with brain only; --planes)",
    )
    bench.add_argument("--crop", type=int, default=96, help="with --volume: crop side (96)")
    bench.add_argument(
        "--planes", type=int, choices=(1, 3), default=1, help="with --volume: planes (1)"
    )


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
    if args.volume:
        return _bench_volume(args, precisions)
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
        conv_algorithms=("direct", "auto")
        if args.conv_algorithm == "both"
        else (args.conv_algorithm,),
    )
    print(format_table(report))
    if args.json:
        write_json_atomic(args.json, report)
        print(f"JSON written to {args.json}")
    return 0


def _bench_volume(args: argparse.Namespace, precisions: list[str]) -> int:
    import json
    import sys

    from mrtranslate.bench import bench_volume
    from mrtranslate.errors import UsageError
    from mrtranslate.fileio import write_json_atomic

    if args.crop < 32 or args.crop % 4:
        raise UsageError(f"--crop must be >= 32 and divisible by 4, got {args.crop}")
    model = args.models[0] if args.models != ["cyclegan", "unit"] else "generators_s"
    precision = "auto" if len(precisions) != 1 else precisions[0]
    print(f"[bench] translating one whole volume with {model}", file=sys.stderr, flush=True)
    result = bench_volume(
        model,
        crop=args.crop,
        planes=args.planes,
        repeats=args.repeats if args.repeats != 5 else 2,
        device=args.device,
        precision=precision,
    )
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    if args.json:
        write_json_atomic(args.json, {"volume": result})
        print(f"JSON written to {args.json}")
    return 0
