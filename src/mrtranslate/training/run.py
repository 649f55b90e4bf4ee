"""A training run on disk: set up from a data set and a config, train or resume, load for use.

Run folder::

    RUN/
      config.json       the resolved configuration (model, profile, net, loss, train)
      run.json          data set, image sizes, seed, package versions, git commit, command,
                        parameter counts, seconds per epoch, finished or not
      checkpoint.pt     the latest checkpoint (atomic; loads with weights_only=True)
      tensorboard/      TensorBoard scalars and sample images
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrtranslate.config import RunConfig, apply_overrides
from mrtranslate.data.dataset import open_dataset
from mrtranslate.data.tensors import load_images, working_shape
from mrtranslate.errors import UsageError
from mrtranslate.fileio import check_writable_parent, write_json_atomic
from mrtranslate.hardware import inference_precision, resolve_device, resolve_precision
from mrtranslate.methods import Method, build_method, display_name, make_config
from mrtranslate.nets import count_parameters
from mrtranslate.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from mrtranslate.training.distributed import (
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


def _resolve_config(
    model: str, profile: str, overrides: list[str], run_dir: Path, resume: bool
) -> tuple[RunConfig, dict | None]:
    checkpoint_path = run_dir / CHECKPOINT_NAME
    if resume and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path)
        cfg = RunConfig.from_dict(state["config"])
        if cfg.model != model:
            raise UsageError(f"{run_dir} holds a {cfg.model} run, not {model}")
    else:
        if checkpoint_path.is_file():
            raise UsageError(
                f"{run_dir} already holds a training run; use --resume to continue "
                "it or choose another --out"
            )
        state = None
        try:
            cfg = make_config(model, profile)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    try:
        apply_overrides(cfg, overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return cfg, state


def train_run(
    model: str,
    data_dir: str | Path,
    run_dir: str | Path,
    profile: str = "quick",
    overrides: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    plan: dict | None = None,
) -> dict:
    """Train (or resume) ``model`` on the data set ``data_dir`` into ``run_dir``.

    Returns the run record (also written to ``run.json``). ``stop_after`` limits the number of
    steps of this call (for tests and time-boxed jobs); the run can be resumed later. ``plan``:
    the study plan that chose this run's settings, recorded in ``config.json`` and ``run.json``.
    """
    run_dir = Path(run_dir)
    dataset = open_dataset(data_dir)
    train_split = dataset.split("train")
    if len(train_split) == 0:
        raise UsageError(f"the training split of {data_dir} is empty")
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir} exists and is not a folder")
    try:
        check_writable_parent(run_dir / "x")
    except PermissionError as exc:
        raise UsageError(f"cannot write the run folder {run_dir}: {exc}") from exc
    cfg, state = _resolve_config(model, profile, overrides or [], run_dir, resume)
    try:
        shape = working_shape(dataset.shape, cfg.train.downsample)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)

    device = resolve_device(cfg.train.device)
    dist_info = init_distributed(device.type)
    if dist_info.enabled:
        device = resolve_device(cfg.train.device, dist_info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # Every rank trains in rank 0's precision (each rank's probe could measure differently).
    choice = broadcast_object(resolve_precision(cfg.train.precision, device), dist_info)
    if dist_info.is_main and (progress or choice.warning):
        if choice.warning:
            print(f"mrtranslate: warning: {choice.warning}", file=sys.stderr, flush=True)
        if progress:
            print(
                f"{display_name(cfg.model)}: {shape[0]}x{shape[1]} pixels "
                f"(data {dataset.shape[0]}x{dataset.shape[1]}), {choice.precision} on {device} "
                f"({choice.reason})",
                flush=True,
            )
    try:
        seed_everything(cfg.train.seed)
        method = build_method(cfg.model, cfg.net, cfg.loss, shape).to(device)
        broadcast_parameters(method, dist_info)
        count = len(train_split)
        if cfg.train.max_train_images:
            count = min(count, cfg.train.max_train_images)
        indices = np.arange(count)
        data = TrainingData(
            t1w=load_images(train_split, "t1w", shape, indices),
            t2w=load_images(train_split, "t2w", shape, indices),
        )
        record = {
            "model": cfg.model,
            "display_name": display_name(cfg.model),
            "profile": cfg.profile,
            "data": {**dataset.info(), "path": str(Path(data_dir).resolve())},
            "data_image_shape": list(dataset.shape),
            "model_image_shape": list(shape),
            "train_images": count,
            "seed": cfg.train.seed,
            "precision": choice.precision,
            "precision_choice": choice.to_dict(),
            "device": str(device),
            "world_size": dist_info.world_size,
            "parameters": parameter_counts(method),
            "environment": environment(),
        }
        if plan is not None:
            record["plan"] = plan
        writer = None
        if dist_info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            config = cfg.to_dict() if plan is None else {**cfg.to_dict(), "plan": plan}
            write_json_atomic(run_dir / "config.json", config)
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tensorboard"))
        trainer = Trainer(
            method,
            cfg.train,
            data,
            run_dir,
            device,
            dist_info,
            progress,
            writer,
            precision=choice.precision,
        )
        if state is not None:
            trainer.load_state_dict(state)
        extra = {
            "config": cfg.to_dict(),
            "model": cfg.model,
            "data_image_shape": list(dataset.shape),
            "model_image_shape": list(shape),
        }
        if trainer.state.step == 0 and dist_info.is_main:
            write_json_atomic(run_dir / "run.json", _update_record(record, trainer))
        trainer.fit(extra, stop_after=stop_after)
        trainer.save(extra)
        if writer is not None:
            writer.close()
        _update_record(record, trainer)
        if dist_info.is_main:
            write_json_atomic(run_dir / "run.json", record)
        barrier(dist_info)
        return record
    finally:
        shutdown(dist_info)


def _update_record(record: dict, trainer: Trainer) -> dict:
    seconds = trainer.state.epoch_seconds
    record.update(
        {
            "steps_done": trainer.state.step,
            "total_steps": trainer.total_steps,
            "steps_per_epoch": trainer.steps_per_epoch,
            "finished": trainer.finished,
            "seconds_per_epoch": seconds,
            "mean_seconds_per_epoch": statistics.fmean(seconds) if seconds else None,
            "images_per_epoch": trainer.steps_per_epoch * trainer.cfg.batch_size,
        }
    )
    return record


@dataclass
class LoadedRun:
    """A trained method ready for inference, with its configuration and record."""

    run_dir: Path
    config: RunConfig
    method: Method
    record: dict
    data_image_shape: tuple[int, int]
    model_image_shape: tuple[int, int]
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"  # for translation on ``device`` (see hardware.inference_precision)

    def resolution_warning(self) -> str | None:
        """A warning when the run works more than 2x below its data's in-plane resolution."""
        factor = max(d / m for d, m in zip(self.data_image_shape, self.model_image_shape))
        if factor <= 2:
            return None
        (dh, dw), (mh, mw) = self.data_image_shape, self.model_image_shape
        return (
            f"{self.run_dir} works at {mh}x{mw} pixels, {factor:.1f}x coarser than its "
            f"{dh}x{dw} data: fine anatomy is lost in the output; for a sharper model train at a "
            "higher resolution (mrtranslate study --budget with more minutes, or "
            "mrtranslate train --set train.downsample=1)"
        )


def load_run(
    run_dir: str | Path, device: str | torch.device = "auto", require_finished: bool = True
) -> LoadedRun:
    """Load a run's latest checkpoint into a method in eval mode (deterministic inference).

    ``device``: ``auto`` (a GPU when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``,
    or a torch device. Translation then uses the run's training precision where it is native on
    that device, else fp32.
    """
    device = device if isinstance(device, torch.device) else resolve_device(device)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        raise UsageError(f"{run_dir} has no checkpoint; train it with 'mrtranslate train'")
    state = load_checkpoint(path)
    if require_finished and not state.get("finished"):
        raise UsageError(
            f"the run in {run_dir} is not finished (step {state.get('step')} of "
            f"{state.get('total_steps')}); resume it with 'mrtranslate train --resume'"
        )
    try:
        cfg = RunConfig.from_dict(state["config"])
        shape = tuple(state["model_image_shape"])
        method = build_method(cfg.model, cfg.net, cfg.loss, shape)
        method.load_state_dict(state["method"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise UsageError(
            f"checkpoint {path} does not match this mrtranslate version: {str(exc).splitlines()[0]}"
        ) from exc
    method.to(device).eval()
    if cfg.train.channels_last:
        method.to(memory_format=torch.channels_last)
    record_path = run_dir / "run.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    trained = record.get("precision", cfg.train.precision)
    return LoadedRun(
        run_dir=run_dir,
        config=cfg,
        method=method,
        record=record,
        data_image_shape=tuple(state["data_image_shape"]),
        model_image_shape=shape,
        device=device,
        precision=inference_precision(trained, device),
    )
