"""A training run on disk: set up from a data set and a config, train or resume.

The run folder's layout and records live in :mod:`mrtranslate.runs`; loading a trained run
for use is :func:`mrtranslate.runs.load_run`.
"""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from mrtranslate.config import RunConfig, TrainConfig, apply_overrides
from mrtranslate.data.dataset import Dataset, open_dataset
from mrtranslate.data.tensors import (
    crop_shape,
    has_slabs,
    load_images,
    load_masks,
    working_shape,
)
from mrtranslate.errors import UsageError
from mrtranslate.fileio import check_writable_parent, write_json_atomic
from mrtranslate.hardware import (
    PrecisionChoice,
    configure_cuda_math,
    resolve_device,
    resolve_precision,
)
from mrtranslate.methods import Method, build_method, display_name, make_config, specs
from mrtranslate.methods import get as get_spec
from mrtranslate.methods.registry import config_from_dict
from mrtranslate.nets import count_parameters
from mrtranslate.runs import RunRecord, layout, load_latest_checkpoint
from mrtranslate.runs.checkpoint import previous_path
from mrtranslate.training.decisions import RunDecisions, decide, device_to_resume_on
from mrtranslate.training.distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    broadcast_parameters,
    init_distributed,
    shutdown,
)
from mrtranslate.training.runinfo import environment
from mrtranslate.training.seed import seed_everything
from mrtranslate.training.trainer import Trainer, TrainingData


def parameter_counts(method: Method) -> dict[str, int]:
    nets = {**method.generators(), **method.discriminators()}
    return {name: count_parameters(net) for name, net in nets.items()}


class Plan(Protocol):
    """What a plan that chose a run's settings offers the run (the study's ``StudyPlan``)."""

    def apply(self, cfg: RunConfig) -> RunConfig: ...

    def conv_algorithms_of(self, model: str) -> dict[str, str]: ...

    def precision_choice_on(self, device: str) -> PrecisionChoice | None: ...

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class RunRequest:
    """How to configure a run, typed: the profile (new runs), then a plan, then explicit
    settings, then the ``--set`` strings of the command line (the only text parsed here).

    Attributes:
        profile: paper, quick or tiny (ignored on a resume: the checkpoint's configuration).
        plan: the plan that chose the run's size and steps (recorded in ``config.json``).
        seed, device, precision: ``train.seed``, ``train.device``, ``train.precision`` when
            given.
        overrides: ``section.key=value`` strings from the command line.
    """

    profile: str = "quick"
    plan: Plan | None = None
    seed: int | None = None
    device: str | None = None
    precision: str | None = None
    overrides: tuple[str, ...] = ()

    def configure(self, cfg: RunConfig) -> RunConfig:
        """Apply the plan, the explicit settings and the overrides to ``cfg``, validated.

        Raises:
            ValueError: an unknown key or a value of the wrong type or range.
        """
        if self.plan is not None:
            self.plan.apply(cfg)
        for key in ("seed", "device", "precision"):
            if getattr(self, key) is not None:
                setattr(cfg.train, key, getattr(self, key))
        return apply_overrides(cfg, list(self.overrides))


def _resolve_config(
    model: str, request: RunRequest, run_dir: Path, resume: bool
) -> tuple[RunConfig, dict | None]:
    checkpoint_path = layout.checkpoint_path(run_dir)
    saved = checkpoint_path.is_file() or previous_path(checkpoint_path).is_file()
    if resume:
        if not saved:
            raise UsageError(
                f"--resume: {run_dir} holds no checkpoint to resume; leave out --resume to "
                "start a new run"
            )
        state, warning = load_latest_checkpoint(checkpoint_path)
        if warning:
            print(f"mrtranslate: warning: {warning}", file=sys.stderr, flush=True)
            # The damaged latest must not become the "previous" checkpoint at the next save.
            checkpoint_path.unlink(missing_ok=True)
        try:
            cfg = config_from_dict(state["config"])
        except (KeyError, ValueError) as exc:
            raise UsageError(f"checkpoint in {run_dir} has no usable configuration: {exc}") from exc
        if cfg.model != model:
            raise UsageError(f"{run_dir} holds a {cfg.model} run, not {model}")
    else:
        if saved:
            raise UsageError(
                f"{run_dir} already holds a training run; use --resume to continue "
                "it, choose another --out, or delete the folder to start over"
            )
        state = None
        try:
            cfg = make_config(model, request.profile)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    try:
        request.configure(cfg)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return cfg, state


@dataclass
class _Setup:
    """What a run needs before its first step (checked before anything is written)."""

    cfg: RunConfig
    state: dict | None
    dataset: Dataset
    shape: tuple[int, int]


def _check_inputs(
    model: str, data_dir: Path, run_dir: Path, request: RunRequest, resume: bool
) -> _Setup:
    dataset = open_dataset(data_dir)
    if len(dataset.split("train")) == 0:
        raise UsageError(f"the training split of {data_dir} is empty")
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir} exists and is not a folder")
    try:
        check_writable_parent(run_dir / "x")
    except PermissionError as exc:
        raise UsageError(f"cannot write the run folder {run_dir}: {exc}") from exc
    cfg, state = _resolve_config(model, request, run_dir, resume)
    if get_spec(cfg.model).paired and not dataset.meta.get("paired", True):
        usable = ", ".join(s.name for s in specs() if not s.paired)
        raise UsageError(
            f"{cfg.model} trains on paired images but {data_dir} is unpaired; use an unpaired "
            f"model ({usable}) or import paired data"
        )
    if cfg.net.context > 1 and not has_slabs(dataset.split("train").slabs):
        raise UsageError(
            f"net.context={cfg.net.context} needs neighbouring slices, but {data_dir} holds one "
            "slice per subject; import a slab (e.g. --slices 40:140) or use net.context=1"
        )
    try:
        shape = working_shape(dataset.shape, cfg.train.downsample)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return _Setup(cfg, state, dataset, shape)


def _decide(cfg: RunConfig, state: dict | None, plan: Plan | None) -> tuple[RunDecisions, DistInfo]:
    """The run's decisions (once; a resume keeps the recorded ones for settings left at auto)
    and its process group. Every rank uses rank 0's precision."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and cfg.train.device.startswith("cuda:"):
        raise UsageError(
            f"train.device={cfg.train.device} would put every torchrun process on one GPU; "
            "use train.device=cuda (or auto): each process takes the GPU of its LOCAL_RANK"
        )
    recorded = (state or {}).get("decisions")
    name = device_to_resume_on(cfg.train, recorded)
    device = resolve_device(name)
    dist_info = init_distributed(device.type)
    if dist_info.enabled:
        device = resolve_device(name, dist_info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    configure_cuda_math(device)
    # A plan's choice was resolved once, by the study; each rank's probe could measure
    # differently: all follow rank 0.
    planned = plan.precision_choice_on(str(device)) if plan is not None else None
    choice = planned or resolve_precision(cfg.train.precision, device)
    choice = broadcast_object(choice, dist_info)
    algorithms = plan.conv_algorithms_of(cfg.model) if plan is not None else None
    decisions = decide(
        cfg.train, device, recorded=recorded, precision=choice, conv_algorithms=algorithms
    )
    return decisions, dist_info


def _announce(setup: _Setup, decisions: RunDecisions, progress: bool):
    kept = (setup.state or {}).get("decisions")
    if kept and progress:
        path = "fast path" if kept["fast_path"] else "plain path"
        print(
            f"resuming with the decisions recorded at the run's start: {kept['device']}, "
            f"{kept['precision']}, {path} (settings left at auto keep them; --set changes "
            "them)",
            flush=True,
        )
    choice, device = decisions.precision, decisions.device
    if choice.warning:
        print(f"mrtranslate: warning: {choice.warning}", file=sys.stderr, flush=True)
    ignored = ignored_crop(setup.cfg.train, setup.shape, setup.dataset.shape)
    if ignored:
        print(f"mrtranslate: warning: {ignored}", file=sys.stderr, flush=True)
    if progress:
        (h, w), (dh, dw) = setup.shape, setup.dataset.shape
        ch, cw = crop_shape(setup.shape, setup.cfg.train.crop)
        crops = f", random {ch}x{cw} crops around the brain" if (ch, cw) != (h, w) else ""
        context = setup.cfg.net.context
        crops += f", {context}-slice context" if context > 1 else ""
        print(
            f"{display_name(setup.cfg.model)}: {h}x{w} pixels (data {dh}x{dw}){crops}, "
            f"{choice.precision} on {device} ({choice.reason})",
            flush=True,
        )


def ignored_crop(
    train: TrainConfig, shape: tuple[int, int], data_shape: tuple[int, int]
) -> str | None:
    """Why ``train.crop`` has no effect, or None: a crop as large as the down-sampled image
    trains on whole images, which a user asking for crops of the data rarely means (the quick
    profile down-samples 240x240 volumes 4x, so any crop of 60 or more is the whole image)."""
    shape, data_shape = tuple(shape), tuple(data_shape)
    if not train.crop or shape == data_shape or crop_shape(shape, train.crop) != shape:
        return None
    if crop_shape(data_shape, train.crop) == data_shape:
        return None  # the crop covers the data too: asked for whole images either way
    (h, w), (dh, dw) = shape, data_shape
    return (
        f"train.crop={train.crop} covers the whole {h}x{w} image (data {dh}x{dw}, "
        "down-sampled): training on whole images; add --set train.downsample=1 to train "
        "on crops at the data's resolution"
    )


def _training_data(setup: _Setup) -> TrainingData:
    split = setup.dataset.split("train")
    count = len(split)
    if setup.cfg.train.max_train_images:
        count = min(count, setup.cfg.train.max_train_images)
    indices = np.arange(count)
    wanted = setup.cfg.train.crop or setup.cfg.loss.brain_only
    masks = load_masks(split, setup.shape, indices) if wanted else None
    net = setup.cfg.net
    images = {
        c: load_images(split, c, setup.shape, indices, context=net.context, floor=net.brain_floor)
        for c in ("t1w", "t2w")
    }
    return TrainingData(
        t1w=images["t1w"],
        t2w=images["t2w"],
        mask_t1w=masks,  # a pair's two images share one brain mask
        mask_t2w=masks,
    )


def _new_record(
    setup: _Setup, data_dir: Path, method: Method, count: int, decisions, dist_info, plan
) -> RunRecord:
    cfg, choice = setup.cfg, decisions.precision
    return RunRecord(
        model=cfg.model,
        display_name=display_name(cfg.model),
        profile=cfg.profile,
        data={**setup.dataset.info(), "path": str(data_dir.resolve())},
        data_image_shape=list(setup.dataset.shape),
        model_image_shape=list(setup.shape),
        train_images=count,
        seed=cfg.train.seed,
        precision=choice.precision,
        precision_choice=choice.to_dict(),
        device=str(decisions.device),
        world_size=dist_info.world_size,
        parameters=parameter_counts(method),
        environment=environment(),
        plan=plan,
    )


def train_run(
    model: str,
    data_dir: str | Path,
    run_dir: str | Path,
    profile: str = "quick",
    overrides: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    request: RunRequest | None = None,
) -> RunRecord:
    """Train (or resume) ``model`` on the data set ``data_dir`` into ``run_dir``.

    Returns the run record (also written to ``run.json``). ``stop_after`` limits the number of
    steps of this call (for tests and time-boxed jobs); the run can be resumed later.
    ``request``: how to configure the run (typed; by default ``profile`` and the ``--set``
    strings ``overrides``). Its plan is recorded in ``config.json`` and ``run.json`` and fixes
    each convolution layer's algorithm (unnamed layers: direct) instead of measuring them
    (``train.conv_algorithm``); a resumed run keeps those of its checkpoint.
    """
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    request = request or RunRequest(profile=profile, overrides=tuple(overrides or ()))
    setup = _check_inputs(model, data_dir, run_dir, request, resume)
    plan = request.plan.to_dict() if request.plan is not None else None
    cfg = setup.cfg
    decisions, dist_info = _decide(cfg, setup.state, request.plan)
    if dist_info.is_main:
        _announce(setup, decisions, progress)
    try:
        seed_everything(cfg.train.seed)
        trained_shape = crop_shape(setup.shape, cfg.train.crop)  # the image pools' size
        method = build_method(cfg.model, cfg.net, cfg.loss, trained_shape)
        method.to(decisions.device)
        broadcast_parameters(method, dist_info)
        data = _training_data(setup)
        record = _new_record(setup, data_dir, method, len(data), decisions, dist_info, plan)
        writer = _start_folder(run_dir, cfg, plan) if dist_info.is_main else None
        trainer = Trainer(method, cfg.train, data, run_dir, decisions, dist_info, progress, writer)
        if setup.state is not None:
            trainer.load_state_dict(setup.state)
        extra = {
            "config": cfg.to_dict(),
            "decisions": decisions.record(),
            "model": cfg.model,
            "data_image_shape": list(setup.dataset.shape),
            "model_image_shape": list(setup.shape),
        }
        if trainer.state.step == 0 and dist_info.is_main:
            write_json_atomic(layout.record_path(run_dir), _progress(record, trainer).to_dict())
        trainer.fit(extra, stop_after=stop_after)
        trainer.save(extra)
        if writer is not None:
            writer.close()
        _progress(record, trainer)
        if dist_info.is_main:
            write_json_atomic(layout.record_path(run_dir), record.to_dict())
        barrier(dist_info)
        return record
    finally:
        shutdown(dist_info)


def _start_folder(run_dir: Path, cfg: RunConfig, plan: dict | None):
    """Create the run folder, write ``config.json`` and return a TensorBoard writer."""
    from torch.utils.tensorboard import SummaryWriter

    run_dir.mkdir(parents=True, exist_ok=True)
    config = cfg.to_dict() if plan is None else {**cfg.to_dict(), "plan": plan}
    write_json_atomic(layout.config_path(run_dir), config)
    return SummaryWriter(str(layout.tensorboard_dir(run_dir)))


def _progress(record: RunRecord, trainer: Trainer) -> RunRecord:
    """Update ``record`` with the trainer's steps and epoch times."""
    seconds = list(trainer.state.epoch_seconds)
    record.steps_done = trainer.state.step
    if trainer.conv_choice is not None:
        record.conv_algorithms = trainer.conv_choice.to_dict()
    record.total_steps = trainer.total_steps
    record.steps_per_epoch = trainer.steps_per_epoch
    record.finished = trainer.finished
    record.seconds_per_epoch = seconds
    record.mean_seconds_per_epoch = statistics.fmean(seconds) if seconds else None
    record.images_per_epoch = trainer.steps_per_epoch * trainer.cfg.batch_size
    return record
