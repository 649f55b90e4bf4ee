"""``mrtranslate study``: the main job, from data to report in one resumable command.

Stages: (1) the data set (the built-in phantom in ``OUT/data`` unless ``--data`` is given),
(2) training of each model in ``OUT/runs/<model>``, (3) evaluation of each run with the reference
points, (4) the report in ``OUT/report``. Each stage is skipped when its output is already
complete, and an interrupted training run resumes from its checkpoint, so running the command
again on the same folder continues where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mrtranslate.config import MODELS
from mrtranslate.data.dataset import open_dataset
from mrtranslate.errors import UsageError
from mrtranslate.fileio import write_json_atomic
from mrtranslate.methods import DISPLAY_NAMES
from mrtranslate.training.checkpoint import CHECKPOINT_NAME, load_checkpoint


def _say(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _prepare_data(data: str | Path | None, out: Path, seed: int, progress: bool) -> Path:
    if data is not None:
        open_dataset(data)  # validates
        return Path(data)
    data_dir = out / "data"
    if (data_dir / "dataset.json").is_file():
        _say(f"reusing the phantom cohort in {data_dir}")
        return data_dir
    from mrtranslate.data.build import build_phantom
    from mrtranslate.data.phantom import PhantomSpec

    _say(f"building the phantom cohort (1113 subjects) in {data_dir}")
    return build_phantom(PhantomSpec(seed=seed), data_dir, overwrite=True, progress=progress)


def _training_done(run_dir: Path, data_dir: Path) -> bool | None:
    """True: finished; False: started (resume); None: not started."""
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        return None
    record_path = run_dir / "run.json"
    if record_path.is_file():
        recorded = json.loads(record_path.read_text()).get("data", {}).get("path")
        if recorded and Path(recorded).resolve() != data_dir.resolve():
            raise UsageError(
                f"{run_dir} was trained on {recorded}, not {data_dir}; use another "
                "--out for a study on other data"
            )
    return bool(load_checkpoint(path).get("finished"))


def _evaluation_done(run_dir: Path) -> bool:
    summary = run_dir / "eval" / "summary.json"
    return (
        summary.is_file() and summary.stat().st_mtime >= (run_dir / CHECKPOINT_NAME).stat().st_mtime
    )


def run_study(
    data: str | Path | None = None,
    out: str | Path = "mrtranslate-study",
    profile: str = "quick",
    models: list[str] | tuple[str, ...] = MODELS,
    overrides: list[str] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Run (or resume) the whole study; returns the path of ``report.html``."""
    from mrtranslate.evaluation.evaluate import evaluate_run
    from mrtranslate.reporting.report import build_report
    from mrtranslate.training.run import train_run

    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise UsageError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    models = [m for m in MODELS if m in models]  # paper order, no duplicates
    out = Path(out)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    data_dir = _prepare_data(data, out, seed, progress)
    timings["data"] = time.perf_counter() - start
    run_dirs = []
    for i, model in enumerate(models, start=1):
        run_dir = out / "runs" / model
        run_dirs.append(run_dir)
        name = DISPLAY_NAMES[model]
        state = _training_done(run_dir, data_dir)
        t0 = time.perf_counter()
        if state:
            _say(f"[{i}/{len(models)}] {name}: already trained")
        else:
            verb = "resuming" if state is False else "training"
            _say(f"[{i}/{len(models)}] {verb} {name} ({profile} profile)")
            train_run(
                model,
                data_dir,
                run_dir,
                profile=profile,
                overrides=[f"train.seed={seed}", *(overrides or [])],
                resume=state is False,
                progress=progress,
            )
        timings[f"train_{model}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if _evaluation_done(run_dir):
            _say(f"[{i}/{len(models)}] {name}: already evaluated")
        else:
            _say(f"[{i}/{len(models)}] evaluating {name}")
            evaluate_run(run_dir, data_dir, progress=progress)
        timings[f"evaluate_{model}"] = time.perf_counter() - t0
    _say("writing the report")
    t0 = time.perf_counter()
    report = build_report(run_dirs, out / "report")
    timings["report"] = time.perf_counter() - t0
    timings["total_this_call"] = time.perf_counter() - start
    write_json_atomic(
        out / "study.json",
        {
            "data": str(data_dir),
            "profile": profile,
            "models": list(models),
            "seed": seed,
            "overrides": overrides or [],
            "seconds": timings,
            "report": str(report),
        },
    )
    _say(f"done in {timings['total_this_call'] / 60:.1f} min")
    return report
