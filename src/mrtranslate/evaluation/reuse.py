"""Never translate one test slice twice: what ``evaluate`` kept, offered to the volume stage.

``mrtranslate evaluate`` translates every test image both ways and keeps the translations
(``eval/synthetic_<direction>.npy``, (N, h, w) float32 in [0, 1] at the run's working size).
When the data set was imported from volumes, each test image is an axial slice of a test volume
and the import recorded which one (``slice_index.npy``). ``evaluate-volumes`` (and the study's
whole-volume stage) then translates those volumes slice by slice: for the slices evaluation has
already translated it takes the kept translation instead (:class:`KnownSlices`), but only

- when the evaluation is of this very checkpoint (SHA-256), on this data set, at this working
  size, on the same device type and in the same precision; and
- slice by slice, when the network input the volume stage builds equals the one evaluation gave
  (to float32 rounding): the same crop, scale, brain floor and 2.5D neighbours.

On the BraTS set imported with ``--slices brain`` this is 408 of the 419 axial brain slices of
the test volumes (97%); everything else is translated as before.
"""

from __future__ import annotations

import json

import numpy as np

from mrtranslate.data.dataset import Dataset, Split
from mrtranslate.data.tensors import load_images
from mrtranslate.directions import Direction
from mrtranslate.fileio import file_digest
from mrtranslate.inference.volumes import KnownSlices
from mrtranslate.runs import LoadedRun, layout


def current_evaluation(run: LoadedRun, dataset: Dataset) -> bool:
    """Whether ``run``'s ``eval/`` holds translations of this checkpoint on ``dataset``'s test
    split, at the run's working size, made on this device type in this precision."""
    try:
        summary = json.loads(layout.summary_path(run.run_dir).read_text(encoding="utf-8"))
        synthesis = summary.get("synthesis") or {}
        return (
            summary.get("checkpoint") == file_digest(layout.checkpoint_path(run.run_dir))
            and summary.get("data") == str(dataset.root.resolve())
            and int(summary.get("test_images", -1)) == len(dataset.split("test"))
            and list(summary.get("evaluation_shape") or []) == list(run.model_image_shape)
            and synthesis.get("precision") == run.precision
            and str(synthesis.get("device", "")).split(":")[0] == str(run.device).split(":")[0]
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def reusable_images(split: Split) -> np.ndarray:
    """(N,) bool: the test images a volume stage may take from evaluation instead of
    translating again (axial slices whose index in their volume the import recorded)."""
    if split.slice_index is None:
        return np.zeros(len(split), dtype=bool)
    if split.planes is None:
        return np.ones(len(split), dtype=bool)
    return np.asarray(split.planes) == 2


def known_slices(
    run: LoadedRun, dataset: Dataset, subject: str, direction: Direction
) -> KnownSlices | None:
    """The axial test slices of ``subject`` that evaluation translated ``direction`` with
    ``run``, with the inputs it gave the network; None when there is nothing to reuse (no
    current evaluation, no recorded slice indices, or no test image of this subject).

    Call :func:`current_evaluation` once per run first; this function trusts it."""
    split = dataset.split("test")
    rows = np.flatnonzero(reusable_images(split) & (np.asarray(split.subjects) == subject))
    path = layout.synthetic_path(run.run_dir, direction)
    if not len(rows) or not path.is_file():
        return None
    try:
        kept = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    shape = tuple(run.model_image_shape)
    if kept.shape != (len(split), *shape):
        return None
    net = run.config.net
    inputs = load_images(
        split, direction.source, shape, rows, context=net.context, floor=net.brain_floor
    ).numpy()
    index = np.asarray(split.slice_index)[rows].tolist()
    return KnownSlices(
        inputs=dict(zip(index, inputs)),
        outputs={k: np.array(kept[row], np.float32) for k, row in zip(index, rows)},
    )
