"""The run folder: its layout, checkpoints, typed records, and loading a trained run.

Everything that reads or writes a run folder goes through this package: training writes it,
evaluation, inference, reporting and the perceptual study read it. It depends on the model
registry (to rebuild a method) but never on training.
"""

from __future__ import annotations

from mrtranslate.runs import layout
from mrtranslate.runs.checkpoint import load_checkpoint, load_latest_checkpoint, save_checkpoint
from mrtranslate.runs.loading import (
    LoadedRun,
    is_evaluated,
    load_evaluation,
    load_metric_rows,
    load_record,
    load_run,
    load_synthetic,
)
from mrtranslate.runs.records import EvalSummary, RunRecord

__all__ = [
    "EvalSummary",
    "LoadedRun",
    "RunRecord",
    "is_evaluated",
    "layout",
    "load_checkpoint",
    "load_latest_checkpoint",
    "load_evaluation",
    "load_metric_rows",
    "load_record",
    "load_run",
    "load_synthetic",
    "save_checkpoint",
]
