"""CLI: ``mrtranslate perceptual build|serve|analyze`` and ``mrtranslate realism``."""

from __future__ import annotations

import argparse

from mrtranslate.cli.parser import add_device, subcommands


def register(sub: argparse._SubParsersAction) -> None:
    per = sub.add_parser(
        "perceptual",
        help="perceptual study: readers label images real or synthetic",
        description="Build, serve and analyse a perceptual study.",
    )
    psub = subcommands(per, "perceptual_command")
    for add in (_add_build, _add_serve, _add_analyze):
        add(psub)
    _add_realism(sub)


def _add_build(psub: argparse._SubParsersAction) -> None:
    build = psub.add_parser(
        "build",
        help="pick and render the study images",
        description="Pick real test images and synthetic images of the given (evaluated) runs, "
        "balanced between T1w and T2w and among the models, render them identically and store "
        "them under random ids; the truth is kept only in the study database.",
    )
    build.add_argument("--data", required=True, help="data-set folder of the runs")
    build.add_argument("--runs", nargs="+", required=True, help="evaluated run folders")
    build.add_argument("--out", required=True, help="study folder")
    build.add_argument("--real", type=int, default=96, help="real images (default 96)")
    build.add_argument("--synthetic", type=int, default=72, help="synthetic images (default 72)")
    build.add_argument("--seed", type=int, default=0, help="seed of the image selection")
    build.add_argument("--overwrite", action="store_true", help="replace an existing study")
    build.set_defaults(func=run_perceptual)


def _add_serve(psub: argparse._SubParsersAction) -> None:
    serve = psub.add_parser(
        "serve",
        help="run the study web server",
        description="Serve the study: readers open http://HOST:PORT/, enter a name and label each "
        "image Real or Synthetic (buttons or the R / S keys). Results are behind the admin "
        "token printed at start.",
    )
    serve.add_argument("study", help="study folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="needed to bind an address other than the loopback (lab network)",
    )
    serve.set_defaults(func=run_perceptual)


def _add_analyze(psub: argparse._SubParsersAction) -> None:
    analyze = psub.add_parser(
        "analyze",
        help="results of a study, with figures",
        description="Write results.json, answers.csv, results.html and "
        "the paper's Figure 1 (d) and (e) for a study.",
    )
    analyze.add_argument("study", help="study folder")
    analyze.add_argument("--out", help="output folder (default STUDY/analysis)")
    analyze.set_defaults(func=run_perceptual)


def _add_realism(sub: argparse._SubParsersAction) -> None:
    realism = sub.add_parser(
        "realism",
        help="automated observer: a CNN tells real from synthetic",
        description="Per model and contrast, train a small CNN to tell real from synthetic test "
        "images (cross-validated by subject); 50%% held-out accuracy means indistinguishable. "
        "Also a smoothness ratio (high-frequency power relative to real images).",
    )
    realism.add_argument("--data", required=True, help="data-set folder of the runs")
    realism.add_argument("--runs", nargs="+", required=True, help="evaluated run folders")
    realism.add_argument("--out", help="folder for realism.json (default: print only)")
    realism.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    realism.add_argument("--epochs", type=int, default=8, help="training epochs per fold")
    realism.add_argument("--seed", type=int, default=0)
    add_device(realism)
    realism.set_defaults(func=run_realism)


def run_perceptual(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mrtranslate.errors import UsageError

    if args.perceptual_command == "build":
        from mrtranslate.perceptual.build import build_study

        out = build_study(
            args.data,
            args.runs,
            args.out,
            args.real,
            args.synthetic,
            args.seed,
            overwrite=args.overwrite,
        )
        print(
            f"study with {args.real + args.synthetic} images written to {out}; serve it with "
            f"'mrtranslate perceptual serve {out}'"
        )
        return 0
    study = Path(args.study)
    if not (study / "study.sqlite").is_file():
        raise UsageError(
            f"{study} is not a perceptual study (no study.sqlite); build one with "
            "'mrtranslate perceptual build'"
        )
    if args.perceptual_command == "analyze":
        from mrtranslate.perceptual.report import write_analysis

        out = Path(args.out) if args.out else study / "analysis"
        result = write_analysis(study, out)
        overall = result["overall"]
        print(
            f"{result['readers']} reader(s), {overall['answers']} answers; accuracy "
            f"{overall['accuracy']:.3f}; results in {out}"
        )
        return 0
    return _serve(args, study)


def _serve(args: argparse.Namespace, study) -> int:
    import ipaddress

    import uvicorn

    from mrtranslate.errors import UsageError
    from mrtranslate.perceptual import store
    from mrtranslate.perceptual.app import create_app

    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not args.allow_remote:
        raise UsageError(
            f"--host {args.host} is not a loopback address; add --allow-remote to "
            "serve the study on a network"
        )
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    conn = store.connect(study)
    token = store.get_meta(conn, "admin_token")
    conn.close()
    shown = "localhost" if loopback else args.host
    print(
        f"readers: http://{shown}:{args.port}/\nresults: http://{shown}:{args.port}/admin?"
        f"token={token}\n(admin token: {token})",
        flush=True,
    )
    uvicorn.run(create_app(study), host=args.host, port=args.port, log_level="warning")
    return 0


def run_realism(args: argparse.Namespace) -> int:
    from mrtranslate.perceptual.realism import run_realism as realism

    result = realism(
        args.data,
        args.runs,
        args.out,
        folds=args.folds,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
    )
    print(f"{'model':<14}{'contrast':<9}{'observer accuracy [95% CI]':<30}{'HF ratio':>9}")
    for model, per in result["models"].items():
        for contrast, entry in per.items():
            low, high = entry["accuracy_ci95"]
            print(
                f"{model:<14}{contrast:<9}{entry['accuracy']:.3f} [{low:.3f}, {high:.3f}]"
                f"{'':<9}{entry['high_frequency_ratio']:>9.3f}"
            )
    return 0
