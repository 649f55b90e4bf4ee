"""Checkpoints: everything needed to continue a run exactly, saved atomically, loaded safely.

A checkpoint holds the method's state (networks and image pools), both optimisers, the step,
the per-epoch wall times and the RNG states. It is written to a temporary file and renamed, so a
kill during a save never leaves a broken ``checkpoint.pt``; the checkpoint it replaces is kept as
``checkpoint.prev.pt``, so that a latest checkpoint damaged later (disk full, copied half) can
fall back to the one before (:func:`load_latest_checkpoint`). Loading uses
``torch.load(weights_only=True)``, which never executes code from the file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from mrtranslate.errors import UsageError
from mrtranslate.fileio import atomic_write

FORMAT = "mrtranslate-checkpoint"
VERSION = 1


def previous_path(path: Path) -> Path:
    """Where the checkpoint before ``path`` is kept (``checkpoint.prev.pt``)."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save ``state`` (tensors, dicts, lists, numbers, strings) atomically to ``path``, keeping
    the checkpoint it replaces as :func:`previous_path`."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **state}

    def keep_previous() -> None:
        # A hard link keeps ``path`` in place the whole time (no moment without a checkpoint).
        if not path.is_file():
            return
        previous = previous_path(path)
        link = previous.with_name(f".{previous.name}.{os.getpid()}.tmp")
        link.unlink(missing_ok=True)
        try:
            os.link(path, link)
        except OSError:  # a file system without hard links
            shutil.copy2(path, link)
        os.replace(link, previous)

    atomic_write(path, lambda tmp: torch.save(payload, tmp), before_replace=keep_previous)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without executing code; one-line :class:`UsageError` when unusable."""
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise UsageError(
            f"checkpoint {path} is damaged or incomplete ({type(exc).__name__})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"{path} is not an mrtranslate checkpoint")
    if state.get("version") != VERSION:
        raise UsageError(
            f"{path} has checkpoint version {state.get('version')}, this mrtranslate "
            f"reads version {VERSION}"
        )
    return state


def load_latest_checkpoint(path: Path) -> tuple[dict[str, Any], str | None]:
    """The checkpoint at ``path``, or the previous one when ``path`` is damaged or missing.

    Returns (state, warning): the warning says that the previous checkpoint was used, else None.

    Raises:
        UsageError: neither can be read; the message says how to start over.
    """
    path = Path(path)
    previous = previous_path(path)
    try:
        return load_checkpoint(path), None
    except UsageError as exc:
        if not previous.is_file():
            if not path.is_file():
                raise
            raise UsageError(
                f"{exc}; no earlier checkpoint to fall back on: delete {path.parent} (or choose "
                "another --out) to start over"
            ) from None
        reason = str(exc)
    try:
        state = load_checkpoint(previous)
    except UsageError as exc:
        raise UsageError(
            f"{reason}, and the previous checkpoint is unusable too ({exc}); delete "
            f"{path.parent} (or choose another --out) to start over"
        ) from None
    return state, f"{reason}; continuing from the previous checkpoint (step {state.get('step')})"
