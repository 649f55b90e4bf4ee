"""``mrtranslate study``: the main job, from data to report in one resumable command.

Stages: (1) the data set (the built-in phantom in ``OUT/data`` unless ``--data`` is given),
(2) a plan that fits the time budget (:mod:`mrtranslate.study.plan`; skipped for a fixed
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

from mrtranslate.config import apply_overrides, check_profile, has_key
from mrtranslate.data.dataset import meta_path, open_dataset
from mrtranslate.errors import UsageError
from mrtranslate.fileio import write_json_atomic
from mrtranslate.methods import display_name, make_config, names, study_names
from mrtranslate.runs import is_evaluated, layout, load_latest_checkpoint, load_record
from mrtranslate.runs.checkpoint import previous_path
from mrtranslate.study.pacing import Pace, format_stage_table, stage_table
from mrtranslate.study.plan import DEFAULT_BUDGET_MINUTES, StudyPlan
from mrtranslate.study.shape import study_shape


def _say(message: str) -> None:
    print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _prepare_data(data: str | Path | None, out: Path, seed: int, progress: bool) -> Path:
    if data is not None:
        open_dataset(data)  # validates
        return Path(data)
    data_dir = out / "data"
    if meta_path(data_dir).is_file():
        _say(f"reusing the phantom cohort in {data_dir}")
        return data_dir
    from mrtranslate.data.build import build_phantom
    from mrtranslate.data.phantom import PhantomSpec

    _say(f"building the phantom cohort (1113 subjects) in {data_dir}")
    return build_phantom(PhantomSpec(seed=seed), data_dir, overwrite=True, progress=progress)


def _training_done(run_dir: Path, data_dir: Path) -> bool | None:
    """True: finished; False: started (resume); None: not started."""
    path = layout.checkpoint_path(run_dir)
    if not path.is_file() and not previous_path(path).is_file():
        return None
    if layout.record_path(run_dir).is_file():
        recorded = load_record(run_dir).data_path
        if recorded and Path(recorded).resolve() != data_dir.resolve():
            raise UsageError(
                f"{run_dir} was trained on {recorded}, not {data_dir}; use another "
                "--out for a study on other data"
            )
    state, warning = load_latest_checkpoint(path)
    if warning:
        _say(f"warning: {warning}")
    return bool(state.get("finished"))


STUDY_FILE = "study.json"  # the study folder's record: mode, plan, models, status, timings
PLAN_FILE = "plan.json"  # the plan alone (for --plan on another machine or fold)


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

    def describe(self) -> dict:
        return {
            "profile": self.profile,
            "budget_minutes": self.budget_minutes,
            "plan": self.plan.to_dict() if self.plan else None,
        }


def _existing_mode(out: Path) -> _Mode | None:
    path = out / STUDY_FILE
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        plan = recorded.get("plan")
        return _Mode(
            profile=recorded.get("profile") or "quick",
            plan=StudyPlan.from_dict(plan) if plan else None,
            budget_minutes=recorded.get("budget_minutes"),
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UsageError(
            f"{path} is damaged ({type(exc).__name__}); delete it to plan the study again"
        ) from None


def _plan_study(
    data_dir: Path,
    models: list[str],
    budget: float,
    spent: float,
    device: str,
    precision: str,
    planes: int | None = None,
) -> StudyPlan:
    from mrtranslate.hardware import resolve_device, resolve_precision
    from mrtranslate.study.calibration import calibrate_and_plan

    torch_device = resolve_device(device)
    choice = resolve_precision(precision, torch_device)
    if choice.warning:
        _say(f"warning: {choice.warning}")
    _say(f"calibrating on {torch_device}: {choice.precision} ({choice.reason})")
    shape = study_shape(open_dataset(data_dir), models)
    if planes == 1 and shape.planes == 3:
        _say("--planes 1: the test volumes translated axially")
        shape.planes, shape.plane_slices = 1, 0
    if shape.native:
        _say("volume data: training at the data's resolution on random crops around the brain")
    plan = calibrate_and_plan(shape, budget, spent, torch_device, choice.precision, say=_say)
    plan.precision_choice = choice.to_dict()  # the runs record this choice, not "bf16 asked"
    if shape.planes == 3:
        _say(
            "training slices along three planes; the test volumes translated along each"
            if plan.planes == 3
            else "training slices along three planes; the test volumes translated axially "
            "(three planes would take over 15% of this budget)"
        )
    return plan


@dataclass
class StudyOptions:
    """What ``mrtranslate study`` was asked to do (see :func:`run_study`)."""

    data: str | Path | None = None
    out: str | Path = "mrtranslate-study"
    profile: str | None = None
    models: list[str] | tuple[str, ...] | None = None
    overrides: list[str] = field(default_factory=list)
    seed: int = 0
    progress: bool = True
    budget_minutes: float | None = None
    plan_file: str | Path | None = None
    device: str = "auto"
    precision: str = "auto"
    planes: int | None = None  # 1: translate test volumes axially (default: as the data)
    force: bool = False  # run a plan that leaves models below the floor (marked under-trained)

    def checked_models(self) -> list[str]:
        """The models in registry order, without duplicates; usage errors for bad options."""
        known = names()
        wanted = study_names() if self.models is None else list(self.models)
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise UsageError(
                f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(known)}"
            )
        if self.profile is not None:
            try:
                check_profile(self.profile)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if self.profile is not None and (self.budget_minutes, self.plan_file) != (None, None):
            raise UsageError(
                "--profile trains a fixed number of steps; it cannot be combined with "
                "--budget or --plan"
            )
        if self.budget_minutes is not None and self.plan_file is not None:
            raise UsageError(
                "--plan fixes the steps and sizes; it cannot be combined with --budget"
            )
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise UsageError(
                f"--budget must be a positive number of minutes, got {self.budget_minutes}"
            )
        chosen = [m for m in known if m in wanted]
        self.check_overrides(chosen)
        return chosen

    def overrides_for(self, model: str) -> list[str]:
        """The ``--set`` overrides that ``model`` has the keys of (each model owns its ``net``
        and ``loss`` settings: an override reaches every model that has its key)."""
        cfg = make_config(model, self.profile or "quick")
        return [item for item in self.overrides if has_key(cfg, item)]

    def check_overrides(self, models: list[str]) -> None:
        """Usage errors, before any work: an override no chosen model has, or a bad value."""
        configs = {m: make_config(m, self.profile or "quick") for m in models}
        for item in self.overrides:
            if any(has_key(cfg, item) for cfg in configs.values()):
                continue
            errors = []
            for cfg in configs.values():
                try:
                    apply_overrides(cfg, [item])
                except ValueError as exc:
                    errors.append(str(exc).split(";")[0])
            renamed = [e for e in errors if " is now " in e]
            raise UsageError(
                renamed[0]
                if renamed
                else f"--set {item}: none of the chosen models "
                f"({', '.join(models)}) has this key: {errors[0]} (each model's settings: "
                "mrtranslate models --settings)"
            )
        for model, cfg in configs.items():
            try:
                apply_overrides(cfg, self.overrides_for(model))
            except ValueError as exc:
                raise UsageError(f"--set for {model}: {exc}") from None


def _check_floor(plan: StudyPlan, budget: float, force: bool) -> None:
    """Refuse, in one line, a plan that trains any model below the floor, with what would fit
    (measured); with ``force`` say so and go on (the report marks those models)."""
    if not plan.under_trained:
        return
    from mrtranslate.study.plan import FLOOR_CROP, MIN_STEPS

    gets = "; ".join(f"{m} would get {w.split(';')[0]}" for m, w in plan.under_trained.items())
    if force:
        _say(f"warning: --force: under-trained models ({gets})")
        return
    advice = plan.calibration.get("floor_advice", {})
    ways = []
    if advice.get("budget_minutes"):
        ways.append(f"--budget {advice['budget_minutes']:g}")
    if advice.get("budget_minutes_axial"):
        ways.append(f"--budget {advice['budget_minutes_axial']:g} --planes 1")
    if advice.get("models"):
        ways.append(f"--models {' '.join(advice['models'])}")
    ways.append("fewer test participants (data import --test-subjects)")
    crop = f" on crops of at least {FLOOR_CROP}x{FLOOR_CROP}" if plan.crop else ""
    raise UsageError(
        f"a {budget:g}-minute study cannot train every model to the floor ({MIN_STEPS} steps"
        f"{crop}) on this data and machine ({gets}); measured, it would fit with "
        f"{' or '.join(ways)}; --force runs it anyway and marks those models under-trained"
    )


def _choose_mode(
    opts: StudyOptions,
    out: Path,
    data_dir: Path,
    models: list[str],
    spent: float,
    given_plan: StudyPlan | None,
) -> _Mode:
    """The recorded mode of a started study, else the given plan, profile or a new plan."""
    mode = _existing_mode(out)
    if mode is not None:
        kept = f"the plan for {mode.plan.budget_minutes:g} min" if mode.plan else mode.profile
        _say(f"continuing the study in {out} with {kept} (study.json)")
    elif given_plan is not None:
        mode = _Mode(plan=given_plan, budget_minutes=given_plan.budget_minutes)
        _say(f"following the plan in {opts.plan_file}")
    elif opts.profile is not None:
        mode = _Mode(profile=opts.profile)
    else:
        budget = opts.budget_minutes or DEFAULT_BUDGET_MINUTES
        planes = {"planes": opts.planes} if opts.planes is not None else {}
        plan = _plan_study(data_dir, models, budget, spent, opts.device, opts.precision, **planes)
        _check_floor(plan, budget, opts.force)
        mode = _Mode(plan=plan, budget_minutes=budget)
    if mode.plan is None:
        return mode
    shape = list(open_dataset(data_dir).shape)
    if list(mode.plan.data_shape) != shape:
        raise UsageError(
            f"the plan is for {mode.plan.data_shape[0]}x{mode.plan.data_shape[1]} images but "
            f"{data_dir} holds {shape[0]}x{shape[1]} images"
        )
    print(mode.plan.table(), flush=True)
    write_json_atomic(out / PLAN_FILE, mode.plan.to_dict())
    return mode


def _train_and_evaluate(
    opts: StudyOptions, mode: _Mode, data_dir: Path, run_dir: Path, pace: Pace, label: str
) -> dict[str, float]:
    """Train (or resume) and evaluate one model unless already done; returns the seconds."""
    from mrtranslate.evaluation.evaluate import evaluate_run
    from mrtranslate.training.run import RunRequest, train_run

    model = run_dir.name
    name = display_name(model)
    state = _training_done(run_dir, data_dir)
    t0 = time.perf_counter()
    if state:
        _say(f"{label} {name}: already trained")
    else:
        _say(f"{label} {'resuming' if state is False else 'training'} {name}")
        request = RunRequest(
            profile=mode.profile,
            plan=mode.plan,
            seed=opts.seed,
            device=opts.device,
            # a plan fixes the precision it calibrated in
            precision=None if mode.plan else opts.precision,
            overrides=tuple(opts.overrides_for(model)),
        )
        train_run(
            model, data_dir, run_dir, resume=state is False, progress=opts.progress, request=request
        )
        pace.stage_done(model, "train", t0, counted=state is None)
    seconds = {f"train_{model}": time.perf_counter() - t0}
    t0 = time.perf_counter()
    if is_evaluated(run_dir):
        _say(f"{label} {name}: already evaluated")
    else:
        _say(f"{label} evaluating {name}")
        evaluate_run(run_dir, data_dir, progress=opts.progress, device=opts.device)
        pace.stage_done(model, "evaluate", t0)
    seconds[f"evaluate_{model}"] = time.perf_counter() - t0
    return seconds


def _evaluate_volumes(
    opts: StudyOptions, data_dir: Path, run_dirs: list[Path], folder: Path
) -> Path | None:
    """On data imported from volumes: judge the held-out whole volumes against the copy and
    lookup baselines (skipped when done for these checkpoints). Returns the folder, or None
    for data without source volumes."""
    from mrtranslate.evaluation.volumes import evaluate_volumes, volumes_current

    if not open_dataset(data_dir).has_volumes():
        return None
    if volumes_current(folder, run_dirs):
        _say("whole test volumes: already evaluated")
        return folder
    _say("translating and judging the whole test volumes (copy and lookup baselines)")
    evaluate_volumes(
        run_dirs, folder, data_dir=data_dir, device=opts.device, progress=opts.progress
    )
    return folder


def _pace(start: float, mode: _Mode, run_dirs: list[Path], planned_now: bool) -> Pace:
    """The study's pace: its ETA and overrun warnings (against the budget for a study planned
    in this call, ``planned_now``, counted from ``start``)."""
    # an evaluation of the current checkpoint exists only for a finished run (load_run)
    finished = tuple(d.name for d in run_dirs if is_evaluated(d))
    return Pace(
        start,
        mode.plan,
        [d.name for d in run_dirs],
        finished=finished,
        budget_seconds=mode.budget_minutes * 60 if planned_now and mode.budget_minutes else None,
    )


def run_study(opts: StudyOptions | None = None, **options) -> Path:
    """Run (or resume) the whole study; returns the path of ``report.html``.

    Options are a :class:`StudyOptions` or its fields as keywords. Without ``profile`` the study
    plans itself to ``budget_minutes`` (default :data:`DEFAULT_BUDGET_MINUTES`) on this machine,
    or follows ``plan_file``;
    with ``profile`` (paper, quick, tiny) it trains that profile's fixed number of steps.
    """
    from mrtranslate.reporting.report import build_report

    opts = opts or StudyOptions(**options)
    models = opts.checked_models()
    given_plan = load_plan(opts.plan_file) if opts.plan_file is not None else None  # fail early
    out = Path(opts.out)
    start = time.perf_counter()
    data_dir = _prepare_data(opts.data, out, opts.seed, opts.progress)
    timings = {"data": time.perf_counter() - start}
    planned_now = not (out / STUDY_FILE).is_file() and given_plan is None
    t0 = time.perf_counter()
    mode = _choose_mode(opts, out, data_dir, models, timings["data"], given_plan)
    if planned_now and mode.plan is not None:
        timings["calibration"] = time.perf_counter() - t0
    record = {
        "data": str(data_dir),
        **mode.describe(),
        "models": models,
        "seed": opts.seed,
        "device": opts.device,
        "overrides": list(opts.overrides),
        "status": "running",
    }
    write_json_atomic(out / STUDY_FILE, record)
    run_dirs = [out / "runs" / model for model in models]
    pace = _pace(start, mode, run_dirs, planned_now=planned_now)
    if mode.plan is not None:
        _say(f"plan ready; {pace.eta(0)}")
    for i, run_dir in enumerate(run_dirs, start=1):
        label = f"[{i}/{len(models)}]"
        timings |= _train_and_evaluate(opts, mode, data_dir, run_dir, pace, label)
        if mode.plan is None:
            continue
        _say(f"{label} {display_name(run_dir.name)} done; {pace.eta(i)}")
        warning = pace.check(i)
        if warning:
            _say(f"{label} {warning}")
    t0 = time.perf_counter()
    volumes = _evaluate_volumes(opts, data_dir, run_dirs, out / "volumes")
    timings["volumes"] = time.perf_counter() - t0
    _say("writing the report")
    t0 = time.perf_counter()
    under = mode.plan.under_trained if mode.plan is not None else {}
    report = build_report(run_dirs, out / "report", volumes=volumes, under_trained=under)
    timings["report"] = time.perf_counter() - t0
    timings["total_this_call"] = time.perf_counter() - start
    _finish(out, record, mode, timings, report)
    return report


def _finish(out: Path, record: dict, mode: _Mode, timings: dict, report: Path) -> None:
    """Record the finished study (with planned against actual time per stage) and say so."""
    stages = stage_table(mode.plan, timings) if mode.plan is not None else []
    finished = {**record, "status": "finished", "seconds": timings, "stages": stages}
    write_json_atomic(out / STUDY_FILE, {**finished, "report": str(report)})
    _say(f"done in {timings['total_this_call'] / 60:.1f} min")
    if stages:
        print("planned against actual time per stage:\n" + format_stage_table(stages), flush=True)
