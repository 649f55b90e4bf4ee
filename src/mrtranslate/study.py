"""``mrtranslate study``: the main job, from data to report in one resumable command.

Stages: (1) the data set (the built-in phantom in ``OUT/data`` unless ``--data`` is given),
(2) a plan that fits the time budget (:mod:`mrtranslate.planning`; skipped for a fixed
``--profile``), (3) training of each model in ``OUT/runs/<model>``, (4) evaluation of each run
with the reference points, (5) the report in ``OUT/report``.

``OUT/study.json`` is written before training starts and records the plan (or the profile), so
running the command again on the same folder continues with the same plan: finished stages are
skipped and an interrupted training run resumes from its checkpoint. ``OUT/plan.json`` holds the
plan alone; ``--plan FILE`` gives it back to another study, which then trains exactly the same
configurations (and, on the same machine, reproduces the numbers).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from mrtranslate.config import PROFILES
from mrtranslate.data.dataset import open_dataset
from mrtranslate.errors import UsageError
from mrtranslate.fileio import write_json_atomic
from mrtranslate.methods import display_name, names
from mrtranslate.planning import StudyPlan
from mrtranslate.training.checkpoint import CHECKPOINT_NAME, load_checkpoint

DEFAULT_BUDGET_MINUTES = 15.0


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


def load_plan(path: str | Path) -> StudyPlan:
    """A plan from ``plan.json`` or ``study.json``; a usage error if the file holds none."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data = data.get("plan", data) if isinstance(data, dict) else data
        return StudyPlan.from_dict(data)
    except FileNotFoundError:
        raise UsageError(f"plan file not found: {path}") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UsageError(f"{path} does not hold a study plan ({type(exc).__name__})") from None


@dataclass
class _Mode:
    """How the study trains: a plan, or a fixed profile."""

    profile: str = "quick"
    plan: StudyPlan | None = None
    budget_minutes: float | None = None
    overrides: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "profile": self.profile,
            "budget_minutes": self.budget_minutes,
            "plan": self.plan.to_dict() if self.plan else None,
        }


def _existing_mode(out: Path) -> _Mode | None:
    path = out / "study.json"
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text(encoding="utf-8"))
    plan = recorded.get("plan")
    return _Mode(
        profile=recorded.get("profile", "quick"),
        plan=StudyPlan.from_dict(plan) if plan else None,
        budget_minutes=recorded.get("budget_minutes"),
    )


def _plan_study(
    data_dir: Path,
    models: list[str],
    budget: float,
    spent: float,
    device: str,
    precision: str,
) -> StudyPlan:
    from mrtranslate.hardware import resolve_device, resolve_precision
    from mrtranslate.planning import calibrate_and_plan

    torch_device = resolve_device(device)
    choice = resolve_precision(precision, torch_device)
    if choice.warning:
        _say(f"warning: {choice.warning}")
    _say(f"calibrating on {torch_device}: {choice.precision} ({choice.reason})")
    dataset = open_dataset(data_dir)
    return calibrate_and_plan(
        models,
        tuple(dataset.shape),
        len(dataset.split("train")),
        len(dataset.split("test")),
        budget,
        spent,
        torch_device,
        choice.precision,
        say=_say,
    )


class _Clock:
    """Elapsed time and an ETA from the plan's estimates, corrected by the drift so far."""

    def __init__(self, start: float, plan: StudyPlan | None):
        self.start = start
        self.plan = plan
        self.estimated_done = 0.0
        self.actual_done = 0.0

    def stage_done(self, estimated: float, began: float) -> None:
        self.estimated_done += estimated
        self.actual_done += time.perf_counter() - began

    def eta(self, remaining_estimate: float) -> str:
        elapsed = time.perf_counter() - self.start
        drift = self.actual_done / self.estimated_done if self.estimated_done > 1 else 1.0
        left = max(0.0, remaining_estimate * min(max(drift, 0.5), 3.0))
        finish = time.strftime("%H:%M", time.localtime(time.time() + left))
        return f"{elapsed / 60:.1f} min elapsed, about {left / 60:.1f} min left (ETA {finish})"


def run_study(
    data: str | Path | None = None,
    out: str | Path = "mrtranslate-study",
    profile: str | None = None,
    models: list[str] | tuple[str, ...] | None = None,
    overrides: list[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    budget_minutes: float | None = None,
    plan_file: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> Path:
    """Run (or resume) the whole study; returns the path of ``report.html``.

    Without ``profile`` the study plans itself to ``budget_minutes`` (default 15) on this
    machine, or follows ``plan_file``; with ``profile`` (paper, quick, tiny) it trains that
    profile's fixed number of steps.
    """
    from mrtranslate.evaluation.evaluate import evaluate_run
    from mrtranslate.reporting.report import build_report
    from mrtranslate.training.run import train_run

    known = names()
    models = known if models is None else models
    unknown = [m for m in models if m not in known]
    if unknown:
        raise UsageError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if profile is not None and profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    if profile is not None and (budget_minutes is not None or plan_file is not None):
        raise UsageError(
            "--profile trains a fixed number of steps; it cannot be combined with "
            "--budget or --plan"
        )
    if budget_minutes is not None and plan_file is not None:
        raise UsageError("--plan fixes the steps and sizes; it cannot be combined with --budget")
    if budget_minutes is not None and not budget_minutes > 0:
        raise UsageError(f"--budget must be a positive number of minutes, got {budget_minutes}")
    models = [m for m in known if m in models]  # registry order, no duplicates
    out = Path(out)
    given_plan = load_plan(plan_file) if plan_file is not None else None
    start = time.perf_counter()
    timings: dict[str, float] = {}
    data_dir = _prepare_data(data, out, seed, progress)
    timings["data"] = time.perf_counter() - start

    mode = _existing_mode(out)
    if mode is not None:
        kept = f"the plan for {mode.plan.budget_minutes:g} min" if mode.plan else mode.profile
        _say(f"continuing the study in {out} with {kept} (study.json)")
    elif given_plan is not None:
        mode = _Mode(plan=given_plan, budget_minutes=given_plan.budget_minutes)
        _say(f"following the plan in {plan_file}")
    elif profile is not None:
        mode = _Mode(profile=profile)
    else:
        budget = budget_minutes or DEFAULT_BUDGET_MINUTES
        plan = _plan_study(data_dir, models, budget, timings["data"], device, precision)
        mode = _Mode(plan=plan, budget_minutes=budget)
    if mode.plan is not None:
        if list(mode.plan.data_shape) != list(open_dataset(data_dir).shape):
            raise UsageError(
                f"the plan is for {mode.plan.data_shape[0]}x{mode.plan.data_shape[1]} images but "
                f"{data_dir} holds {'x'.join(map(str, open_dataset(data_dir).shape))} images"
            )
        print(mode.plan.table(), flush=True)
        write_json_atomic(out / "plan.json", mode.plan.to_dict())
        mode.overrides = mode.plan.overrides()
    else:
        mode.overrides = [f"train.precision={precision}"]
    device_overrides = [f"train.device={device}"]
    study_record = {
        "data": str(data_dir),
        **mode.describe(),
        "models": list(models),
        "seed": seed,
        "device": device,
        "overrides": overrides or [],
        "status": "running",
    }
    write_json_atomic(out / "study.json", study_record)

    clock = _Clock(start, mode.plan)
    estimates = {m.model: m for m in (mode.plan.models if mode.plan else [])}

    def remaining(after: int, evaluated: bool) -> float:
        left = 10.0
        for j, name in enumerate(models):
            est = estimates.get(name)
            if est is None:
                continue
            if j > after:
                left += est.train_seconds + est.evaluate_seconds
            elif j == after and not evaluated:
                left += est.evaluate_seconds
        return left

    if mode.plan is not None:
        _say(f"plan ready; {clock.eta(remaining(-1, False))}")
    run_dirs = []
    for i, model in enumerate(models, start=1):
        run_dir = out / "runs" / model
        run_dirs.append(run_dir)
        name = display_name(model)
        state = _training_done(run_dir, data_dir)
        t0 = time.perf_counter()
        if state:
            _say(f"[{i}/{len(models)}] {name}: already trained")
        else:
            verb = "resuming" if state is False else "training"
            _say(f"[{i}/{len(models)}] {verb} {name} ({mode.profile} profile)")
            train_run(
                model,
                data_dir,
                run_dir,
                profile=mode.profile,
                overrides=[
                    f"train.seed={seed}",
                    *device_overrides,
                    *mode.overrides,
                    *(overrides or []),
                ],
                resume=state is False,
                progress=progress,
                plan=mode.plan.to_dict() if mode.plan else None,
            )
            if model in estimates:
                clock.stage_done(estimates[model].train_seconds, t0)
        timings[f"train_{model}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if _evaluation_done(run_dir):
            _say(f"[{i}/{len(models)}] {name}: already evaluated")
        else:
            _say(f"[{i}/{len(models)}] evaluating {name}")
            evaluate_run(run_dir, data_dir, progress=progress, device=device)
            if model in estimates:
                clock.stage_done(estimates[model].evaluate_seconds, t0)
        timings[f"evaluate_{model}"] = time.perf_counter() - t0
        if mode.plan is not None:
            _say(f"[{i}/{len(models)}] {name} done; {clock.eta(remaining(i - 1, True))}")
    _say("writing the report")
    t0 = time.perf_counter()
    report = build_report(run_dirs, out / "report")
    timings["report"] = time.perf_counter() - t0
    timings["total_this_call"] = time.perf_counter() - start
    write_json_atomic(
        out / "study.json",
        {**study_record, "status": "finished", "seconds": timings, "report": str(report)},
    )
    _say(f"done in {timings['total_this_call'] / 60:.1f} min")
    return report
