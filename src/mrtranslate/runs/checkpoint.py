"""Checkpoints: everything needed to continue a run exactly, saved atomically, loaded safely.

A checkpoint holds the method's state (networks and image pools), both optimisers, the step,
the per-epoch wall times and the RNG states. It is written to a temporary file and renamed, so a
kill during a save never leaves a broken ``checkpoint.pt``. Loading uses
``torch.load(weights_only=True)``, which never executes code from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mrtranslate.errors import UsageError
from mrtranslate.fileio import atomic_write

FORMAT = "mrtranslate-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save ``state`` (tensors, dicts, lists, numbers, strings) atomically to ``path``."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without executing code; one-line :class:`UsageError` when unusable."""
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise UsageError(f"cannot read checkpoint {path}: {type(exc).__name__}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"{path} is not an mrtranslate checkpoint")
    if state.get("version") != VERSION:
        raise UsageError(
            f"{path} has checkpoint version {state.get('version')}, this mrtranslate "
            f"reads version {VERSION}"
        )
    return state
