"""CLI commands for evaluation, reports and the one-command study."""

from __future__ import annotations

import argparse
import sys

from mrtranslate.config import PRECISIONS, PROFILES
from mrtranslate.directions import DIRECTIONS
from mrtranslate.methods import names

DEVICE_HELP = "auto (a GPU when available, else the CPU; default), cpu, cuda or cuda:N"


def register(sub: argparse._SubParsersAction) -> None:
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
    ev.add_argument("--device", default="auto", help=DEVICE_HELP)
    ev.add_argument("--quiet", action="store_true", help="no progress bars")

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
        "--subject-index", type=int, default=0, help="test image shown in Figure 2 (default 0)"
    )
    rp.add_argument(
        "--perceptual",
        metavar="STUDY",
        help="include the results of a perceptual study (Figure 1 d, e)",
    )
    rp.add_argument(
        "--realism", metavar="DIR", help="include the automated observer (folder with realism.json)"
    )

    st = sub.add_parser(
        "study",
        help="the main job: phantom, all five models, evaluation and report, in a time budget",
        description="Build the phantom cohort (or reuse it), plan the training to the time "
        "budget on this machine (calibrated step times; steps first, then image size), train "
        "the models, evaluate them with the reference points and write the report. The plan is "
        "printed before training and saved in OUT/study.json and OUT/plan.json. Run again on the "
        "same folder to resume with the same plan; finished steps are skipped.",
    )
    st.add_argument("--data", help="data-set folder (default: OUT/data, the built-in phantom)")
    st.add_argument(
        "--out", default="mrtranslate-study", help="study folder (default ./mrtranslate-study)"
    )
    st.add_argument(
        "--budget",
        type=float,
        metavar="MINUTES",
        help="time budget for the whole study in minutes (default 15)",
    )
    st.add_argument(
        "--plan",
        metavar="FILE",
        help="follow the plan in FILE (plan.json or study.json of another study) instead of "
        "planning: the same configurations, and on the same machine the same numbers",
    )
    st.add_argument(
        "--profile",
        choices=PROFILES,
        help="train a profile's fixed steps instead of planning (paper, quick, tiny), e.g. for "
        "exact comparisons across machines",
    )
    st.add_argument(
        "--models",
        nargs="+",
        choices=names(),
        default=names(),
        help="models to train (default: all five)",
    )
    st.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override applied to every model (repeatable)",
    )
    st.add_argument("--device", default="auto", help=DEVICE_HELP)
    st.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (bf16 where natively fast, else fp32; default), fp32 or bf16",
    )
    st.add_argument("--seed", type=int, default=0, help="seed of the phantom and the training")
    st.add_argument("--quiet", action="store_true", help="no progress bars")


def register_translate(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser(
        "translate",
        help="translate whole NIfTI volumes with a trained run",
        description="Translate a NIfTI volume (or every volume of a folder) slice by slice along "
        "the axial axis, with the training preprocessing; the output keeps the input's affine "
        "and header, is zero outside the mask, and is in the input's intensity units (each "
        "synthetic slice times the input slice's 99.5th-percentile divisor).",
    )
    tr.add_argument("--run", required=True, help="run folder of a finished training run")
    tr.add_argument("--direction", required=True, choices=[d.value for d in DIRECTIONS])
    tr.add_argument("--input", required=True, help="NIfTI file or folder of NIfTI files")
    tr.add_argument("--output", required=True, help="output NIfTI file or folder")
    tr.add_argument("--mask", help="brain mask NIfTI (default: the input's non-zero voxels)")
    tr.add_argument("--batch-size", type=int, default=16, help="slices per batch (default 16)")
    tr.add_argument("--device", default="auto", help=DEVICE_HELP)
    tr.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")


def run_translate(args: argparse.Namespace) -> int:
    from mrtranslate.errors import UsageError
    from mrtranslate.inference import translate_paths
    from mrtranslate.training.run import load_run

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    run = load_run(args.run, device=args.device)

    def announce() -> None:
        (mh, mw), (dh, dw) = run.model_image_shape, run.data_image_shape
        print(
            f"{run.record.get('display_name', run.config.model)} works at {mh}x{mw} pixels "
            f"(its data: {dh}x{dw}); translating on {run.device} in {run.precision}",
            file=sys.stderr,
        )
        warning = run.resolution_warning()
        if warning:
            print(f"mrtranslate: warning: {warning}", file=sys.stderr, flush=True)

    written = translate_paths(
        run,
        args.direction,
        args.input,
        args.output,
        mask=args.mask,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        progress=not args.quiet,
        before_work=announce,
    )
    for path in written:
        print(f"written: {path}")
    return 0


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


def run_report(args: argparse.Namespace) -> int:
    from mrtranslate.reporting.report import build_report

    path = build_report(
        args.runs,
        args.out,
        subject_index=args.subject_index,
        perceptual=args.perceptual,
        realism=args.realism,
    )
    print(f"report written to {path}")
    return 0


def run_study(args: argparse.Namespace) -> int:
    from mrtranslate.study import run_study as study

    path = study(
        data=args.data,
        out=args.out,
        profile=args.profile,
        models=args.models,
        overrides=args.overrides,
        seed=args.seed,
        progress=not args.quiet,
        budget_minutes=args.budget,
        plan_file=args.plan,
        device=args.device,
        precision=args.precision,
    )
    print(f"\nstudy finished; open the report: {path}")
    return 0
