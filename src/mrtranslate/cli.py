"""The ``mrtranslate`` command line: argument parsing and dispatch to the library.

Every usage or input error is reported as one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mrtranslate import __version__, cli_eval, cli_models, cli_perceptual
from mrtranslate.errors import TrainingError, UsageError


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 304x256, got {text!r}") from None
    return h, w


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data",
        help="build, inspect and preview data sets",
        description="Build, inspect and preview data sets.",
    )
    dsub = data.add_subparsers(
        dest="data_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    ph = dsub.add_parser(
        "phantom",
        help="build the built-in multi-contrast brain phantom cohort",
        description="Generate paired T1w/T2w axial slices from the MNI152 tissue maps shipped "
        "with nilearn: per-subject deformation, tissue-parameter jitter, bias field, Rician noise "
        "and optional white-matter lesions. Defaults mirror the paper (1113 subjects, 900 train / "
        "213 test, 304x256 pixels of 0.7 mm).",
    )
    ph.add_argument("--out", required=True, help="output data-set folder")
    ph.add_argument("--subjects", type=int, default=1113, help="number of subjects (default 1113)")
    ph.add_argument(
        "--test-subjects", type=int, default=213, help="subjects in the test split (default 213)"
    )
    ph.add_argument(
        "--slices-per-subject",
        type=int,
        default=1,
        help="axial slices per subject, 2 mm apart (default 1)",
    )
    ph.add_argument(
        "--size",
        type=_size,
        default=(304, 256),
        help="image size HxW, divisible by 4 (default 304x256)",
    )
    ph.add_argument("--spacing", type=float, default=0.7, help="pixel spacing in mm (default 0.7)")
    ph.add_argument(
        "--lesion-fraction",
        type=float,
        default=0.0,
        help="fraction of subjects with white-matter lesions (default 0)",
    )
    ph.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ph.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    ph.add_argument("--workers", type=int, default=None, help="worker processes (default 2)")
    ph.add_argument("--quiet", action="store_true", help="no progress bar")

    imp = dsub.add_parser(
        "import",
        help="import HCP, BIDS, NIfTI-pair or PNG/TIFF-folder data",
        description="Import real data into the data-set layout that train/evaluate/study read. "
        "Volumes are reoriented to RAS+, sliced axially, cropped/padded to --size and scaled per "
        "slice (negatives clipped, divided by the 99.5th percentile inside the brain mask, "
        "clipped to [0, 1]); nothing is quantised to 8 bits. The split is by subject.",
    )
    imp.add_argument("--format", required=True, choices=("hcp", "bids", "pairs", "folders"))
    imp.add_argument("--root", help="source folder (hcp, bids, folders)")
    imp.add_argument("--csv", help="CSV with columns subject,t1w,t2w[,mask] (--format pairs)")
    imp.add_argument("--out", required=True, help="output data-set folder")
    imp.add_argument(
        "--slices",
        help="slice index (120) or range A:B, end exclusive "
        "(default: 120 for hcp, the middle slice otherwise)",
    )
    imp.add_argument("--axis", type=int, default=2, help="slicing axis in RAS+ (2 = axial)")
    imp.add_argument(
        "--size",
        type=_size,
        help="image size HxW, divisible by 4 "
        "(default: 304x256 for hcp, the slice size rounded up to 4 otherwise)",
    )
    imp.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="fraction of subjects in the test split (default 0.2)",
    )
    imp.add_argument("--test-subjects", help="file with one test subject id per line")
    imp.add_argument(
        "--paired",
        action="store_true",
        help="folders: pair trainA/trainB (and testA/testB) by sorted file name",
    )
    imp.add_argument(
        "--intensity",
        choices=("robust", "keep"),
        default="robust",
        help="folders: robust per-image scaling (default) or keep the file's values",
    )
    imp.add_argument("--seed", type=int, default=0, help="seed of the random split")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")

    export = dsub.add_parser(
        "export-png",
        help="write a data set as 16-bit PNG folders",
        description="Write a data set as 16-bit PNG images in the trainA/ "
        "trainB/ testA/ testB/ layout (A = T1w, B = T2w) for other tools.",
    )
    export.add_argument("dir", help="data-set folder")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    export.add_argument("--quiet", action="store_true", help="no progress bar")

    info = dsub.add_parser(
        "info",
        help="print a data set's description as JSON",
        description="Print contrasts, split sizes, image shape, pixel spacing, "
        "pairing, source and seed of a data set as JSON.",
    )
    info.add_argument("dir", help="data-set folder")

    pv = dsub.add_parser(
        "preview",
        help="save a picture of T1w/T2w pairs with their masks",
        description="Save a PNG grid of T1w/T2w pairs and masks of a data set.",
    )
    pv.add_argument("dir", help="data-set folder")
    pv.add_argument("--out", required=True, help="output image (.png or .svg)")
    pv.add_argument("--split", choices=("train", "test"), default="train")
    pv.add_argument("--count", type=int, default=4, help="number of subjects shown (default 4)")


def _run_data(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mrtranslate.data.dataset import open_dataset
    from mrtranslate.fileio import to_json

    if args.data_command == "phantom":
        from mrtranslate.data.build import build_phantom
        from mrtranslate.data.phantom import PhantomSpec

        spec = PhantomSpec(
            subjects=args.subjects,
            test_subjects=args.test_subjects,
            slices_per_subject=args.slices_per_subject,
            height=args.size[0],
            width=args.size[1],
            spacing=args.spacing,
            lesion_fraction=args.lesion_fraction,
            seed=args.seed,
        )
        if args.workers is not None and args.workers < 1:
            raise UsageError(f"--workers must be positive, got {args.workers}")
        out = build_phantom(
            spec, args.out, overwrite=args.overwrite, workers=args.workers, progress=not args.quiet
        )
        print(f"phantom data set written to {out}")
        return 0
    if args.data_command == "import":
        return _run_import(args)
    dataset = open_dataset(args.dir)
    if args.data_command == "export-png":
        from mrtranslate.data.folders import export_png

        out = export_png(dataset, args.out, overwrite=args.overwrite, progress=not args.quiet)
        print(f"16-bit PNG folders written to {out}")
        return 0
    if args.data_command == "info":
        print(to_json(dataset.info()))
        return 0
    if args.data_command == "preview":
        from mrtranslate.data.preview import save_preview

        out = Path(args.out)
        if out.suffix.lower() not in (".png", ".svg"):
            raise UsageError(f"--out must end in .png or .svg, got {out}")
        if args.count < 1:
            raise UsageError(f"--count must be positive, got {args.count}")
        save_preview(dataset, out, split=args.split, count=args.count)
        print(f"preview written to {out}")
        return 0
    raise UsageError(f"unknown data command {args.data_command}")


def _run_import(args: argparse.Namespace) -> int:
    from mrtranslate.data.importers import ImportOptions, import_volumes

    options = ImportOptions(
        slices=args.slices,
        axis=args.axis,
        size=args.size,
        test_fraction=args.test_fraction,
        test_subjects_file=args.test_subjects,
        seed=args.seed,
        paired=args.paired or args.format != "folders",
        csv=args.csv,
    )
    if args.format == "folders":
        from mrtranslate.data.folders import import_folders

        if not args.root:
            raise UsageError("--format folders needs --root")
        out = import_folders(
            args.root,
            args.out,
            options,
            intensity=args.intensity,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    else:
        if args.format != "pairs" and not args.root:
            raise UsageError(f"--format {args.format} needs --root")
        out = import_volumes(
            args.format,
            args.root or ".",
            args.out,
            options,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    print(f"data set written to {out}")
    return 0


COMMANDS = {
    "data": _run_data,
    "models": cli_models.run_models,
    "train": cli_models.run_train,
    "evaluate": cli_eval.run_evaluate,
    "report": cli_eval.run_report,
    "study": cli_eval.run_study,
    "bench": cli_models.run_bench,
    "translate": cli_eval.run_translate,
    "perceptual": cli_perceptual.run_perceptual,
    "realism": cli_perceptual.run_realism,
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mrtranslate",
        description="Translate brain MR images between T1w and T2w with GANs, and "
        "evaluate the translations (MAE, PSNR, MI, SSIM, figures, reports).",
    )
    parser.add_argument("--version", action="version", version=f"mrtranslate {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    _add_data_commands(sub)
    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


_EXTRA_COMMANDS: list = [
    cli_models.register,
    cli_eval.register,
    cli_eval.register_translate,
    cli_models.register_bench,
    cli_perceptual.register,
]


def _exit_distributed_worker(code: int) -> int:
    """End a torchrun worker without interpreter teardown.

    With gloo, a worker whose process group was already destroyed sometimes aborts in C++
    ("terminate called without an active exception") while the interpreter shuts down, about
    one run in ten here, after all results were written. Flushing and ``os._exit`` skips that
    teardown so a finished distributed run reports success.
    """
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
        code = COMMANDS[args.command](args)
        return _exit_distributed_worker(code) if args.command == "train" else code
    except UsageError as exc:
        print(f"mrtranslate: error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"mrtranslate: training stopped: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mrtranslate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mrtranslate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
