"""Reading a run folder: a trained run ready for translation, and its evaluation."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrtranslate.config import RunConfig
from mrtranslate.data.tensors import crop_shape
from mrtranslate.errors import UsageError
from mrtranslate.fileio import file_digest
from mrtranslate.hardware import configure_cuda_math, inference_precision, resolve_device
from mrtranslate.methods import Method, build_method, display_name
from mrtranslate.methods.registry import config_from_dict
from mrtranslate.runs import layout
from mrtranslate.runs.checkpoint import load_checkpoint
from mrtranslate.runs.records import EvalSummary, RunRecord


@dataclass
class LoadedRun:
    """A trained method in eval mode, with its configuration and record.

    Attributes:
        data_image_shape: (H, W) of the data set's images.
        model_image_shape: (h, w) the model works at (its working resolution).
        device: where the method is; precision: the translation precision there.
    """

    run_dir: Path
    config: RunConfig
    method: Method
    record: RunRecord
    data_image_shape: tuple[int, int]
    model_image_shape: tuple[int, int]
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"  # for translation on ``device`` (see hardware.inference_precision)

    @property
    def display_name(self) -> str:
        return self.record.display_name

    @property
    def intensity_scale(self) -> str:
        """How the training data was scaled: ``volume`` (one divisor per volume) or ``slice``
        (per image; runs on data sets imported before volume scaling existed)."""
        data = self.record.data if isinstance(self.record.data, dict) else {}
        return data.get("intensity_scale") or "slice"

    @property
    def tile(self) -> tuple[int, int] | None:
        """(h, w) of the training crops when the run trained on crops smaller than its images
        (translation then runs in tiles of that size: inference/batches.py), else None."""
        crop = crop_shape(self.model_image_shape, self.config.train.crop)
        return None if crop == tuple(self.model_image_shape) else crop

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


def load_record(run_dir: str | Path, config: RunConfig | None = None) -> RunRecord:
    """``run.json`` of ``run_dir``; when it is missing, a minimal record built from ``config``
    (model, display name, profile and the configured precision)."""
    path = layout.record_path(run_dir)
    if path.is_file():
        return RunRecord.load(path)
    if config is None:
        raise UsageError(f"{run_dir} has no run record ({path.name})")
    return RunRecord(
        model=config.model,
        display_name=display_name(config.model),
        profile=config.profile,
        precision=config.train.precision,
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
    configure_cuda_math(device)  # fp32 means float32 on a GPU too
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run folder not found: {run_dir}")
    path = layout.checkpoint_path(run_dir)
    if not path.is_file():
        raise UsageError(f"{run_dir} has no checkpoint; train it with 'mrtranslate train'")
    state = load_checkpoint(path)
    if require_finished and not state.get("finished"):
        raise UsageError(
            f"the run in {run_dir} is not finished (step {state.get('step')} of "
            f"{state.get('total_steps')}); resume it with 'mrtranslate train --resume'"
        )
    try:
        cfg = config_from_dict(state["config"])
        shape = tuple(state["model_image_shape"])
        # image pools hold training crops: build with their size to load the state
        method = build_method(cfg.model, cfg.net, cfg.loss, crop_shape(shape, cfg.train.crop))
        method.load_state_dict(state["method"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UsageError(
            f"checkpoint {path} does not match this mrtranslate version: {str(exc).splitlines()[0]}"
        ) from exc
    method.to(device).eval()
    if cfg.train.channels_last:
        method.to(memory_format=torch.channels_last)
    record = load_record(run_dir, cfg)
    return LoadedRun(
        run_dir=run_dir,
        config=cfg,
        method=method,
        record=record,
        data_image_shape=tuple(state["data_image_shape"]),
        model_image_shape=shape,
        device=device,
        precision=inference_precision(record.precision, device),
    )


def is_evaluated(run_dir: str | Path) -> bool:
    """Whether the run has an evaluation of its current checkpoint (by SHA-256, not file times:
    a run trained further, or copied, has a checkpoint its evaluation did not see)."""
    summary_path, checkpoint = layout.summary_path(run_dir), layout.checkpoint_path(run_dir)
    if not (summary_path.is_file() and checkpoint.is_file()):
        return False
    try:
        summary = EvalSummary.load(summary_path)
    except UsageError:
        return False
    return bool(summary.checkpoint) and summary.checkpoint == file_digest(checkpoint)


def load_evaluation(run_dir: str | Path) -> EvalSummary:
    """The run's ``eval/summary.json`` when it evaluates the run's current checkpoint; a usage
    error saying what to run when it is missing, damaged or stale."""
    path = layout.summary_path(run_dir)
    again = f"run 'mrtranslate evaluate --run {run_dir}'"
    if not path.is_file():
        raise UsageError(f"{run_dir} has not been evaluated; {again} first")
    summary = EvalSummary.load(path)
    checkpoint = layout.checkpoint_path(run_dir)
    if checkpoint.is_file() and summary.checkpoint != file_digest(checkpoint):
        what = "an older checkpoint" if summary.checkpoint else "an unrecorded checkpoint"
        raise UsageError(
            f"the evaluation in {run_dir} is of {what}, not the run's current one (trained "
            f"further or replaced since); {again} again"
        )
    return summary


def load_metric_rows(run_dir: str | Path) -> list[dict[str, str]]:
    """The per-image rows of ``eval/metrics.csv`` (values as written, strings)."""
    path = layout.metrics_path(run_dir)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read {path}: {type(exc).__name__}") from None


def load_synthetic(run_dir: str | Path, direction, summary: EvalSummary) -> np.ndarray:
    """The run's synthetic test images of ``direction``, checked against its evaluation summary:
    (N, h, w) float32 in [0, 1] (memory-mapped); a one-line usage error when damaged."""
    path = layout.synthetic_path(run_dir, direction)
    hint = f"evaluate the run again ('mrtranslate evaluate --run {run_dir}')"
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"{path} is missing; {hint}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise UsageError(f"{path} is damaged ({type(exc).__name__}); {hint}") from None
    expected = (summary.test_images, *summary.evaluation_shape)
    if array.dtype.kind != "f" or tuple(array.shape) != tuple(expected):
        raise UsageError(
            f"{path} holds {array.dtype} {tuple(array.shape)}, not float {expected}; {hint}"
        )
    return array
