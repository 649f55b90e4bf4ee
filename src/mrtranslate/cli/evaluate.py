"""``mrtranslate evaluate``, ``mrtranslate report`` and ``mrtranslate translate``."""

from __future__ import annotations

import argparse
import sys

from mrtranslate.cli.parser import add_device
from mrtranslate.directions import DIRECTIONS


def register(sub: argparse._SubParsersAction) -> None:
    _add_evaluate(sub)
    _add_evaluate_volumes(sub)
    _add_report(sub)
    _add_translate(sub)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="measure a trained model on the test split",
        description="Translate the test split in both directions and compute MAE, PSNR, mutual "
        "information and SSIM on per-image z-scored images, over the whole image and inside the "
        "brain mask; also the 'copy the input' and histogram-matching reference points and the "
        "synthesis time. Writes RUN/eval/metrics.csv and RUN/eval/summary.json.",
    )
    ev.add_argument("--run", required=True, help="run folder of a finished training run")
    ev.add_argument("--data", help="data-set folder (default: the one the run was trained on)")
    ev.add_argument("--batch-size", type=int, default=16, help="translation batch (default 16)")
    add_device(ev)
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=run_evaluate)


def _add_evaluate_volumes(sub: argparse._SubParsersAction) -> None:
    vol = sub.add_parser(
        "evaluate-volumes",
        help="judge whole test volumes against copy-input and intensity-lookup baselines",
        description="For a data set imported from NIfTI volumes: translate every test "
        "participant's whole T1w and T2w volumes with each run (both directions) and compare "
        "them with the real volumes inside the brain: MAE, PSNR, 3-D SSIM, Pearson r, "
        "inter-slice consistency, in-plane detail ratio, slice-to-slice intensity jumps, and "
        "SSIM inside/outside a lesion mask. Each volume is divided by its own in-brain 99.5th "
        "percentile and clipped to [0, 1]. Two baselines are measured the same way: copying the "
        "input, and a per-voxel intensity lookup fitted on the training participants only. "
        "Writes OUT/volumes.csv, OUT/summary.json and OUT/summary.md.",
    )
    vol.add_argument("--runs", nargs="+", required=True, help="run folders of trained models")
    vol.add_argument("--out", required=True, help="output folder")
    vol.add_argument("--data", help="data-set folder (default: the one the first run used)")
    vol.add_argument("--batch-size", type=int, default=16, help="slices per batch (default 16)")
    vol.add_argument(
        "--save-volumes",
        action="store_true",
        help="also write each model's synthetic volumes as NIfTI under OUT/nifti/",
    )
    add_device(vol)
    vol.add_argument("--quiet", action="store_true", help="no progress output")
    vol.set_defaults(func=run_evaluate_volumes)


def _add_report(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser(
        "report",
        help="figures, tables, statistics and report.html from evaluated runs",
        description="Build the paper's Figure 1 (bar charts) and Figure 2 (example images with "
        "relative-error maps), tables as CSV and Markdown, paired statistical tests between "
        "models, and a self-contained report.html.",
    )
    rp.add_argument("--runs", nargs="+", required=True, help="evaluated run folders")
    rp.add_argument("--out", required=True, help="output folder")
    rp.add_argument(
        "--subject-index",
        type=int,
        default=None,
        help="test image shown in Figure 2 (default: the image at the 75th percentile of brain "
        "area, through the middle of the brain in volume data)",
    )
    rp.add_argument(
        "--volumes",
        metavar="DIR",
        help="include a whole-volume evaluation (the OUT of 'mrtranslate evaluate-volumes')",
    )
    rp.add_argument(
        "--perceptual",
        metavar="STUDY",
        help="include the results of a perceptual study (Figure 1 d, e)",
    )
    rp.add_argument(
        "--realism", metavar="DIR", help="include the automated observer (folder with realism.json)"
    )
    rp.set_defaults(func=run_report)


def _add_translate(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser(
        "translate",
        help="translate whole NIfTI volumes with a trained run",
        description="Translate a NIfTI volume (or every volume of a folder) slice by slice along "
        "the axial axis, with the training preprocessing; the output keeps the input's affine "
        "and header, is zero outside the mask, and is in the input's intensity units (times the "
        "divisor the input was scaled by: the whole volume's in-brain 99.5th percentile when the "
        "run's data was scaled per volume, else each slice's). Given a BIDS root "
        "as --input, every sub-*/[ses-*/]anat/*_T1w (or *_T2w) image is translated into a BIDS "
        "derivative data set (default ROOT/derivatives/mrtranslate): "
        "*_desc-synthetic_T2w.nii.gz with a JSON sidecar, and dataset_description.json.",
    )
    tr.add_argument("--run", required=True, help="run folder of a finished training run")
    tr.add_argument("--direction", required=True, choices=[d.value for d in DIRECTIONS])
    tr.add_argument(
        "--input", required=True, help="NIfTI file, folder of NIfTI files, or a BIDS root"
    )
    tr.add_argument(
        "--output",
        help="output NIfTI file or folder (required), or for a BIDS root the derivative folder "
        "(default ROOT/derivatives/mrtranslate)",
    )
    tr.add_argument(
        "--mask",
        help="brain mask NIfTI (default: the input's non-zero voxels, enclosed holes filled)",
    )
    tr.add_argument(
        "--raw",
        action="store_true",
        help="the input is a raw scan (its own grid, thick slices, skull): N4, brain "
        "extraction, 1 mm isotropic resampling, the translation, and back onto the input's "
        "grid, zero outside the brain, with a JSON sidecar naming every step (one file)",
    )
    tr.add_argument("--batch-size", type=int, default=16, help="slices per batch (default 16)")
    add_device(tr)
    tr.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=run_translate)


def run_translate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mrtranslate.errors import UsageError
    from mrtranslate.inference import translate_paths
    from mrtranslate.inference.bids import is_bids_root, translate_bids
    from mrtranslate.runs import load_run

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    run = load_run(args.run, device=args.device)

    def announce() -> None:
        (mh, mw), (dh, dw) = run.model_image_shape, run.data_image_shape
        tiles = f" in {run.tile[0]}x{run.tile[1]} tiles (its training crops)" if run.tile else ""
        if run.config.net.planes == 3:
            tiles += ", along axial, coronal and sagittal slices, averaged"
        print(
            f"{run.display_name} works at {mh}x{mw} pixels (its data: {dh}x{dw}); "
            f"translating on {run.device} in {run.precision}{tiles}",
            file=sys.stderr,
        )
        warning = run.resolution_warning()
        if warning:
            print(f"mrtranslate: warning: {warning}", file=sys.stderr, flush=True)

    common = {
        "batch_size": args.batch_size,
        "overwrite": args.overwrite,
        "progress": not args.quiet,
        "before_work": announce,
    }
    if args.raw:
        written = [_translate_raw(args, run, announce)]
    elif is_bids_root(Path(args.input)):
        if args.mask:
            raise UsageError("--mask works with a single input volume, not a BIDS root")
        written = translate_bids(run, args.direction, args.input, args.output, **common)
    elif args.output is None:
        raise UsageError("--output is required unless --input is a BIDS root")
    else:
        written = translate_paths(
            run, args.direction, args.input, args.output, mask=args.mask, **common
        )
    for path in written:
        print(f"written: {path}")
    return 0


def _translate_raw(args: argparse.Namespace, run, announce):
    """``translate --raw``: one raw scan in, the synthetic volume on its own grid out."""
    from mrtranslate.errors import UsageError
    from mrtranslate.preparation.raw_translate import translate_raw

    if args.output is None:
        raise UsageError("--output is required with --raw")
    if args.mask:
        raise UsageError("--raw extracts the brain itself; leave out --mask")
    return translate_raw(
        run,
        args.direction,
        args.input,
        args.output,
        overwrite=args.overwrite,
        progress=not args.quiet,
        say=lambda line: print(line, file=sys.stderr),
        before_work=announce,
    )


def run_evaluate(args: argparse.Namespace) -> int:
    from mrtranslate.errors import UsageError
    from mrtranslate.evaluation.evaluate import evaluate_run
    from mrtranslate.reporting.tables import summary_markdown

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    summary = evaluate_run(
        args.run,
        args.data,
        batch_size=args.batch_size,
        progress=not args.quiet,
        device=args.device,
    )
    print(summary_markdown([summary]))
    print(f"\nwritten: {args.run}/eval/metrics.csv, {args.run}/eval/summary.json")
    return 0


def run_evaluate_volumes(args: argparse.Namespace) -> int:
    from mrtranslate.errors import UsageError
    from mrtranslate.evaluation.volumes import evaluate_volumes, volume_markdown

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    summary = evaluate_volumes(
        args.runs,
        args.out,
        data_dir=args.data,
        device=args.device,
        batch_size=args.batch_size,
        save_volumes=args.save_volumes,
        progress=not args.quiet,
    )
    print(volume_markdown(summary))
    print(f"\nwritten: {args.out}/volumes.csv, {args.out}/summary.json")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from mrtranslate.reporting.report import build_report

    path = build_report(
        args.runs,
        args.out,
        subject_index=args.subject_index,
        perceptual=args.perceptual,
        realism=args.realism,
        volumes=args.volumes,
    )
    print(f"report written to {path}")
    return 0
