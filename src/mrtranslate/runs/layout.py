"""Where everything lives in a run folder (the only place that spells these names).

Run folder::

    RUN/
      config.json       the resolved configuration (model, profile, net, loss, train[, plan])
      run.json          the run record (:class:`~mrtranslate.runs.records.RunRecord`)
      checkpoint.pt     the latest checkpoint (atomic; loads with weights_only=True)
      tensorboard/      TensorBoard scalars and sample images
      eval/
        summary.json    the evaluation summary (:class:`~mrtranslate.runs.records.EvalSummary`)
        metrics.csv     one row per test image and direction
        references.csv  the same measures for the reference points
        synthetic_t1-to-t2.npy, synthetic_t2-to-t1.npy   (N, h, w) float32 in [0, 1]
"""

from __future__ import annotations

from pathlib import Path

from mrtranslate.directions import Direction

CONFIG_NAME = "config.json"
RECORD_NAME = "run.json"
CHECKPOINT_NAME = "checkpoint.pt"
TENSORBOARD_NAME = "tensorboard"
EVAL_NAME = "eval"


def config_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CONFIG_NAME


def record_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RECORD_NAME


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def tensorboard_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / TENSORBOARD_NAME


def eval_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / EVAL_NAME


def summary_path(run_dir: str | Path) -> Path:
    return eval_dir(run_dir) / "summary.json"


def metrics_path(run_dir: str | Path) -> Path:
    return eval_dir(run_dir) / "metrics.csv"


def references_path(run_dir: str | Path) -> Path:
    return eval_dir(run_dir) / "references.csv"


def synthetic_path(run_dir: str | Path, direction: Direction | str) -> Path:
    """The synthetic test images of ``direction``: (N, h, w) float32 in [0, 1]."""
    return eval_dir(run_dir) / f"synthetic_{Direction(direction)}.npy"
