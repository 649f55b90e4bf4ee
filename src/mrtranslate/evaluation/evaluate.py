"""``mrtranslate evaluate``: translate the test split both ways and measure the translations.

Writes into ``RUN/eval/``:

- ``metrics.csv``: one row per test image and direction: subject, MAE/PSNR/MI/SSIM over the whole
  image (the paper's way) and the same inside the brain mask (``*_mask``);
- ``summary.json``: per direction and measure: mean, std, median, 95% CI and n, plus timings
  (training s/epoch, synthesis s/image at batch 1 and batched) and the reference points;
- ``synthetic_t1-to-t2.npy`` / ``synthetic_t2-to-t1.npy``: (N, h, w) float32 in [0, 1];
- ``references.csv``: the same measures for "copy the input" and histogram matching.

Images are compared at the run's working resolution (the ground truth is resized with the same
anti-aliased filter as the inputs).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from mrtranslate.data.dataset import Dataset, meta_path, open_dataset
from mrtranslate.data.tensors import load_images, load_masks, to_data_range
from mrtranslate.directions import DIRECTIONS
from mrtranslate.errors import UsageError
from mrtranslate.evaluation.metrics import image_measures, measure_keys
from mrtranslate.evaluation.references import (
    REFERENCES,
    reference_quantiles,
    reference_translation,
)
from mrtranslate.evaluation.summary import describe
from mrtranslate.fileio import (
    file_digest,
    save_npy_atomic,
    write_json_atomic,
    write_text_atomic,
)
from mrtranslate.inference.batches import time_synthesis, translate_stack
from mrtranslate.progress import progress_bar
from mrtranslate.runs import EvalSummary, LoadedRun, layout, load_run


def columns() -> list[str]:
    """Every measure, whole image then inside the mask (``mae``, ..., ``mae_mask``, ...)."""
    return [f"{m}{suffix}" for suffix in ("", "_mask") for m in measure_keys()]


def measure_stack(
    real: np.ndarray,
    synthetic: np.ndarray,
    masks: np.ndarray,
    desc: str = "",
    progress: bool = True,
) -> list[dict[str, float]]:
    """Per-image measures (whole image and inside the mask) of (N, h, w) arrays in [0, 1].

    An image whose brain mask is empty at this resolution (a slice at the edge of a volume,
    down-sampled) gets NaN for the masked measures; summaries and tests leave those out.
    """
    rows = []
    for i in progress_bar(
        range(real.shape[0]), desc=desc, unit="img", disable=not progress, leave=False
    ):
        whole = image_measures(real[i], synthetic[i])
        if masks[i].any():
            inside = image_measures(real[i], synthetic[i], masks[i])
        else:
            inside = dict.fromkeys(whole, float("nan"))
        rows.append(whole | {f"{k}_mask": v for k, v in inside.items()})
    return rows


def summarise(rows_by_direction: dict[str, list[dict]]) -> dict:
    return {
        direction: {col: describe(np.array([r[col] for r in rows])) for col in columns()}
        for direction, rows in rows_by_direction.items()
    }


def summarise_by_site(rows_by_direction: dict[str, list[dict]], sites: list[str]) -> dict:
    """:func:`summarise` of each site's images alone (``sites``: the site of each image, in
    row order); empty when every image comes from one site (the pooled table says it all)."""
    if len(set(sites)) < 2:
        return {}
    return {
        site: summarise(
            {
                d: [r for r, s in zip(rows, sites) if s == site]
                for d, rows in rows_by_direction.items()
            }
        )
        for site in dict.fromkeys(sites)
    }


def _csv_text(rows: list[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def test_tensors(dataset: Dataset, shape: tuple[int, int]) -> dict:
    """Test images of both contrasts at ``shape`` ((N, 1, h, w) in [-1, 1]) and masks."""
    split = dataset.split("test")
    if len(split) == 0:
        raise UsageError(f"the test split of {dataset.root} is empty")
    return {
        "t1w": load_images(split, "t1w", shape),
        "t2w": load_images(split, "t2w", shape),
        "mask": load_masks(split, shape)[:, 0].numpy(),
        "subjects": split.subjects.tolist(),
        "sites": [dataset.site_of(s) for s in split.subjects.tolist()],
    }


def _input_stacks(dataset: Dataset, shape, net, tensors: dict) -> dict:
    """The models' inputs as the run's networks take them: with 2.5D context (N, context, h, w)
    stacks, with the brain floor; else the test images themselves."""
    if net.context == 1 and net.brain_floor == 0:
        return tensors
    split = dataset.split("test")
    return {
        c: load_images(split, c, shape, context=net.context, floor=net.brain_floor)
        for c in ("t1w", "t2w")
    }


# Reference results depend only on the data set and the image size, so a process that
# evaluates several runs (``mrtranslate study``) measures them once.
_REFERENCE_CACHE: dict[tuple, tuple[dict, list[dict]]] = {}


def evaluate_references(
    dataset: Dataset, shape: tuple[int, int], tensors: dict, progress: bool = True
) -> tuple[dict, list[dict]]:
    """Measures of the training-free reference points on the test split (cached per process)."""
    meta = meta_path(dataset.root)
    key = (str(dataset.root.resolve()), meta.stat().st_mtime_ns, tuple(shape), measure_keys())
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = _measure_references(dataset, shape, tensors, progress)
    return _REFERENCE_CACHE[key]


def _measure_references(
    dataset: Dataset, shape: tuple[int, int], tensors: dict, progress: bool
) -> tuple[dict, list[dict]]:
    train = dataset.split("train")
    quantiles = {c: reference_quantiles(load_images(train, c, shape)) for c in ("t1w", "t2w")}
    summaries, rows = {}, []
    for name in REFERENCES:
        per_direction = {}
        for direction in DIRECTIONS:
            src, dst = direction.source, direction.target
            fake = reference_translation(name, tensors[src], quantiles[dst])
            real01 = to_data_range(tensors[dst])[:, 0].numpy()
            fake01 = to_data_range(fake)[:, 0].numpy()
            measured = measure_stack(
                real01, fake01, tensors["mask"], f"{name} {direction}", progress
            )
            per_direction[direction] = measured
            rows += [
                {"reference": name, "direction": direction, "subject": s, **m}
                for s, m in zip(tensors["subjects"], measured)
            ]
        summaries[name] = summarise(per_direction)
    return summaries, rows


def _open_test_data(run: LoadedRun, run_dir, data_dir) -> tuple[Dataset, Path]:
    """The data set to evaluate on (the run's own by default), checked against the run."""
    data_dir = data_dir or run.record.data_path
    if not data_dir:
        raise UsageError(f"{run_dir} does not record its data set; pass --data")
    dataset = open_dataset(data_dir)
    if tuple(dataset.shape) != tuple(run.data_image_shape):
        raise UsageError(
            f"the data set's images are {dataset.shape[0]}x{dataset.shape[1]} but "
            f"the run was trained on {run.data_image_shape[0]}x"
            f"{run.data_image_shape[1]} images"
        )
    if not dataset.meta.get("paired", True):
        raise UsageError(
            f"{data_dir} is not paired; evaluation compares each synthetic image "
            "with its ground truth and needs paired test images"
        )
    return dataset, Path(data_dir)


# (batch size, repeats) of the synthesis timing: batch 1, and the evaluation's batch
SYNTHESIS_TIMING_REPEATS = 16


def _synthesis_timing(run: LoadedRun, images: torch.Tensor, direction, batch_size: int) -> dict:
    """Median seconds per image at batch 1 and at ``batch_size``."""
    common = {"device": run.device, "precision": run.precision, "tile": run.tile}
    return {
        "seconds_per_image_batch1": time_synthesis(
            run.method, images, direction, 1, repeats=SYNTHESIS_TIMING_REPEATS, **common
        ),
        f"seconds_per_image_batch{batch_size}": time_synthesis(
            run.method, images, direction, batch_size, repeats=2 * batch_size, **common
        ),
    }


def synthesis_timing_images(test_images: int, batch_size: int = 16) -> int:
    """Whole test images that :func:`_synthesis_timing` translates (one direction): the
    calls of :func:`time_synthesis` at batch 1 and at ``batch_size``, warm-up included."""
    total = 0
    for batch, repeats in ((1, SYNTHESIS_TIMING_REPEATS), (batch_size, 2 * batch_size)):
        n = max(1, min(batch, test_images))
        total += n * (1 + max(1, repeats // n))
    return total


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    batch_size: int = 16,
    progress: bool = True,
    device: str = "auto",
) -> EvalSummary:
    """Evaluate a finished run on the test split; returns the summary (also written to disk).

    ``device``: where translation runs (``auto``: a GPU when available, else the CPU; see
    :func:`mrtranslate.hardware.resolve_device`), in the precision :func:`load_run` chose.
    """
    run = load_run(run_dir, device=device)
    checkpoint = file_digest(layout.checkpoint_path(run_dir))  # the file just loaded
    dataset, data_dir = _open_test_data(run, run_dir, data_dir)
    shape = run.model_image_shape
    tensors = test_tensors(dataset, shape)
    inputs = _input_stacks(dataset, shape, run.config.net, tensors)
    rows_by_direction, csv_rows, timing = {}, [], {}
    for direction in DIRECTIONS:
        src, dst = direction.source, direction.target
        # trained for the brain only: background outside it (so tiles without brain are skipped)
        masks = torch.from_numpy(tensors["mask"]) if run.config.loss.brain_only else None
        fake = translate_stack(
            run.method,
            inputs[src],
            direction,
            batch_size,
            run.device,
            run.precision,
            run.tile,
            masks=masks,
        )
        if masks is not None:
            fake = torch.where(masks[:, None], fake, -1.0)
        real01 = to_data_range(tensors[dst])[:, 0].numpy()
        fake01 = to_data_range(fake)[:, 0].numpy()
        save_npy_atomic(layout.synthetic_path(run_dir, direction), fake01.astype(np.float32))
        rows = measure_stack(real01, fake01, tensors["mask"], f"measures {direction}", progress)
        rows_by_direction[direction] = rows
        csv_rows += [
            {"direction": direction, "index": i, "subject": s, "site": site, **r}
            for i, (s, site, r) in enumerate(zip(tensors["subjects"], tensors["sites"], rows))
        ]
        timing[direction] = _synthesis_timing(run, inputs[src], direction, batch_size)
    references, ref_rows = evaluate_references(dataset, shape, tensors, progress)
    summary = _summary(run, data_dir, tensors, rows_by_direction, timing, references)
    summary.checkpoint = checkpoint
    summary.measures_by_site = summarise_by_site(rows_by_direction, tensors["sites"])
    _write_evaluation(run_dir, summary, csv_rows, ref_rows)
    return summary


def _summary(run: LoadedRun, data_dir: Path, tensors, rows_by_direction, timing, references):
    record, shape = run.record, run.model_image_shape
    return EvalSummary(
        model=run.config.model,
        display_name=record.display_name or run.config.model,
        profile=run.config.profile,
        data=str(data_dir.resolve()),
        test_images=len(tensors["subjects"]),
        evaluation_shape=list(shape),
        measures=summarise(rows_by_direction),
        training={
            "mean_seconds_per_epoch": record.mean_seconds_per_epoch,
            "seconds_per_epoch": record.seconds_per_epoch,
            "images_per_epoch": record.images_per_epoch,
            "precision": record.precision,
            "device": record.device,
            "data_image_shape": list(run.data_image_shape),
        },
        synthesis={
            "device": str(run.device),
            "precision": run.precision,
            "torch_threads": torch.get_num_threads(),
            **timing,
        },
        references=references,
    )


def _write_evaluation(run_dir, summary: EvalSummary, rows: list[dict], ref_rows: list[dict]):
    write_text_atomic(
        layout.metrics_path(run_dir),
        _csv_text(rows, ["direction", "index", "subject", "site", *columns()]),
    )
    write_text_atomic(
        layout.references_path(run_dir),
        _csv_text(ref_rows, ["reference", "direction", "subject", *columns()]),
    )
    write_json_atomic(layout.summary_path(run_dir), summary.to_dict())
