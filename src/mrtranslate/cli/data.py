"""``mrtranslate data``: build the phantom, import real data, export, inspect and preview."""

from __future__ import annotations

import argparse

from mrtranslate.cli.parser import image_size, subcommands
from mrtranslate.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data",
        help="build, inspect and preview data sets",
        description="Build, inspect and preview data sets.",
    )
    dsub = subcommands(data, "data_command")
    for add in (_add_phantom, _add_prepare, _add_import, _add_export, _add_info, _add_preview):
        add(dsub)


def _add_phantom(dsub: argparse._SubParsersAction) -> None:
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
        type=image_size,
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
    ph.set_defaults(func=_run_phantom)


def _add_import(dsub: argparse._SubParsersAction) -> None:
    imp = dsub.add_parser(
        "import",
        help="import HCP, BIDS, NIfTI-pair or PNG/TIFF-folder data",
        description="Import real data into the data-set layout that train/evaluate/study read. "
        "Volumes are reoriented to RAS+, sliced axially, cropped/padded to --size and scaled per "
        "volume or per slice (--scale; negatives clipped, divided by the 99.5th percentile inside "
        "the brain mask, clipped to [0, 1]); nothing is quantised to 8 bits. The split is by "
        "participant, stratified by site when several sources are imported.",
    )
    imp.add_argument("--format", required=True, choices=("hcp", "bids", "pairs", "folders"))
    imp.add_argument(
        "--root",
        action="append",
        metavar="[SITE=]FOLDER",
        help="source folder (hcp, bids, folders); hcp and bids take several, one per site "
        "(named by the folder, or SITE=FOLDER): one data set, each subject's site recorded, "
        "the split stratified by site",
    )
    imp.add_argument(
        "--csv",
        help="CSV with columns subject,t1w,t2w[,mask,participant,lesion,site] (--format pairs)",
    )
    imp.add_argument("--out", required=True, help="output data-set folder")
    imp.add_argument(
        "--slices",
        help="slice index (120), range A:B (end exclusive), or 'brain': every slice across "
        "the brain (from the first to the last whose brain area is at least 2%% of the "
        "largest; recommended for volume work: evaluate-volumes judges whole volumes) "
        "(default: 120 for hcp, the middle slice otherwise)",
    )
    imp.add_argument("--axis", type=int, default=2, help="slicing axis in RAS+ (2 = axial)")
    imp.add_argument(
        "--planes",
        type=int,
        default=1,
        help="3: the training subjects' brain slices along all three axes (axial, coronal, "
        "sagittal; needs --slices brain and near-cubic voxels), the test subjects' axial "
        "slices, for models that translate volumes along three planes (net.planes=3); "
        "1 (default): slices along --axis only",
    )
    imp.add_argument(
        "--size",
        type=image_size,
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
    _add_import_options(imp)
    imp.add_argument("--seed", type=int, default=0, help="seed of the random split")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=_run_import)


def _add_import_options(imp: argparse.ArgumentParser) -> None:
    """The options of single formats (folders) and of scaling and citation."""
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
    imp.add_argument(
        "--participant-pattern",
        metavar="REGEX",
        help="folders: a regular expression whose group 1 (or match) in a file stem names the "
        "participant, e.g. '(sub-[0-9]+)'; a participant's images must all be in train or "
        "all in test (default: every file stem is a participant)",
    )
    imp.add_argument(
        "--scale",
        choices=("auto", "volume", "slice"),
        default="auto",
        help="intensity scale of NIfTI volumes: one divisor per volume (the 99.5th percentile of "
        "its brain voxels) or per slice; auto (default): volume when several slices per volume "
        "are imported, else slice (the paper's per-image setting)",
    )
    imp.add_argument(
        "--citation",
        help="how to cite the data, shown in reports (default for BIDS: dataset_description.json "
        "HowToAcknowledge/ReferencesAndLinks/DatasetDOI, else the README paragraph with a DOI)",
    )


def _spacing(text: str) -> float | None:
    """``--spacing``: a positive number of mm, or ``native``."""
    if text == "native":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected mm or 'native', got {text!r}") from None
    if not 0.2 <= value <= 5:
        raise argparse.ArgumentTypeError(f"expected 0.2 to 5 mm, got {value:g}")
    return value


def _add_prepare(dsub: argparse._SubParsersAction) -> None:
    prep = dsub.add_parser(
        "prepare",
        help="co-register raw T1w/T2w sessions (own grids, skull) into a BIDS derivative",
        description="For every sub-*/[ses-*/]anat T1w/T2w pair of a raw BIDS folder: N4 bias "
        "correction, rigid mutual-information registration of the T2w onto the T1w, brain "
        "extraction (the MNI152 brain carried by affine registration; offline), both images "
        "and the mask resampled onto one grid, a registration score and a QC picture. Writes a "
        "BIDS derivative that 'data import --format bids' reads; sessions whose registration "
        "looks failed are flagged and kept out of it.",
    )
    prep.add_argument("--root", required=True, help="raw BIDS folder")
    prep.add_argument("--out", required=True, help="derivative folder to write")
    prep.add_argument(
        "--spacing",
        type=_spacing,
        default=1.0,
        help="output grid: isotropic voxels of this many mm over the T1w's field of view "
        "(default 1, like the shared training data) or 'native' (the T1w's own grid)",
    )
    prep.add_argument("--no-n4", action="store_true", help="skip the N4 bias-field correction")
    prep.add_argument(
        "--keep-flagged",
        action="store_true",
        help="write flagged sessions into the BIDS tree too (default: under OUT/flagged/)",
    )
    prep.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    prep.set_defaults(func=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from mrtranslate.preparation.prepare import PrepareOptions, prepare_bids

    options = PrepareOptions(spacing=args.spacing, n4=not args.no_n4)
    summary = prepare_bids(
        args.root, args.out, options, overwrite=args.overwrite, keep_flagged=args.keep_flagged
    )
    count = len(summary["sessions"])
    print(f"{count} session(s) prepared into {args.out} (summary.json, qc/)")
    return 0


def _add_export(dsub: argparse._SubParsersAction) -> None:
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
    export.set_defaults(func=_run_export)


def _add_info(dsub: argparse._SubParsersAction) -> None:
    info = dsub.add_parser(
        "info",
        help="print a data set's description as JSON",
        description="Print contrasts, split sizes, image shape, pixel spacing, "
        "pairing, source and seed of a data set as JSON.",
    )
    info.add_argument("dir", help="data-set folder")
    info.set_defaults(func=_run_info)


def _add_preview(dsub: argparse._SubParsersAction) -> None:
    pv = dsub.add_parser(
        "preview",
        help="save a picture of T1w/T2w pairs with their masks",
        description="Save a PNG grid of T1w/T2w pairs and masks of a data set.",
    )
    pv.add_argument("dir", help="data-set folder")
    pv.add_argument("--out", required=True, help="output image (.png or .svg)")
    pv.add_argument("--split", choices=("train", "test"), default="train")
    pv.add_argument("--count", type=int, default=4, help="number of subjects shown (default 4)")
    pv.set_defaults(func=_run_preview)


def _run_phantom(args: argparse.Namespace) -> int:
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


def _run_export(args: argparse.Namespace) -> int:
    from mrtranslate.data.dataset import open_dataset
    from mrtranslate.data.folders import export_png

    dataset = open_dataset(args.dir)
    out = export_png(dataset, args.out, overwrite=args.overwrite, progress=not args.quiet)
    print(f"16-bit PNG folders written to {out}")
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from mrtranslate.data.dataset import open_dataset
    from mrtranslate.fileio import to_json

    print(to_json(open_dataset(args.dir).info()))
    return 0


def _run_preview(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mrtranslate.data.dataset import open_dataset
    from mrtranslate.data.preview import save_preview

    dataset = open_dataset(args.dir)
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"--out must end in .png or .svg, got {out}")
    if args.count < 1:
        raise UsageError(f"--count must be positive, got {args.count}")
    save_preview(dataset, out, split=args.split, count=args.count)
    print(f"preview written to {out}")
    return 0


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
        participant_pattern=args.participant_pattern,
        citation=args.citation,
        scale=args.scale,
        planes=args.planes,
    )
    if args.format == "folders":
        from mrtranslate.data.folders import import_folders

        if not args.root:
            raise UsageError("--format folders needs --root")
        if len(args.root) > 1:
            raise UsageError("--format folders takes one --root; import several with bids")
        if args.planes != 1:
            raise UsageError("--planes 3 cuts NIfTI volumes (hcp, bids or pairs), not images")
        out = import_folders(
            args.root[0],
            args.out,
            options,
            intensity=args.intensity,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    else:
        if args.format != "pairs" and not args.root:
            raise UsageError(f"--format {args.format} needs --root")
        if args.format == "pairs" and args.root:
            raise UsageError("--format pairs reads --csv (its site column names the sites)")
        out = import_volumes(
            args.format,
            args.root or [],
            args.out,
            options,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    print(f"data set written to {out}")
    return 0
