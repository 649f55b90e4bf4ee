"""``mrtranslate study``: the main job in one resumable command."""

from __future__ import annotations

import argparse

from mrtranslate.cli.parser import add_device, add_overrides, add_precision
from mrtranslate.config import PROFILES
from mrtranslate.methods import names, study_names
from mrtranslate.study.plan import DEFAULT_BUDGET_MINUTES


def register(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser(
        "study",
        help="the main job: phantom, all models, evaluation and report, in a time budget",
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
        help=f"time budget for the whole study in minutes (default {DEFAULT_BUDGET_MINUTES:g})",
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
        default=study_names(),
        help="models to train (default: the paper's five, without pix2pix; name it to add it)",
    )
    _add_plan_options(st)
    add_overrides(
        st, "config override for every chosen model that has the key (a key none has is refused)"
    )
    add_device(st)
    add_precision(st, default="auto")
    st.add_argument("--seed", type=int, default=0, help="seed of the phantom and the training")
    st.add_argument("--quiet", action="store_true", help="no progress bars")
    st.set_defaults(func=run_study)


def _add_plan_options(st: argparse.ArgumentParser) -> None:
    st.add_argument(
        "--planes",
        type=int,
        choices=(1, 3),
        help="planes to translate the test volumes along: 3 (the default for data imported "
        "with --planes 3) or 1 (axial: cheaper, leaves more of the budget to training)",
    )
    st.add_argument(
        "--force",
        action="store_true",
        help="run even when the budget cannot train every model to the floor (the study "
        "otherwise stops before it starts and says what budget would fit); the report marks "
        "those models under-trained",
    )


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
        planes=args.planes,
        force=args.force,
    )
    print(f"\nstudy finished; open the report: {path}")
    return 0
