"""Whole-volume evaluation: does any model beat copying the input and an intensity lookup?

For a data set imported from NIfTI volumes (``dataset.json`` records each subject's files), every
test participant's whole T1w and T2w volumes are translated in both directions with each run
(:func:`mrtranslate.inference.translate_volume`, the brain mask given) and compared with the real
volume inside the brain (:mod:`mrtranslate.evaluation.volume_measures`), beside two baselines
computed the same way (:mod:`mrtranslate.evaluation.volume_baselines`): *copy the input* and an
*intensity lookup* fitted on the training participants only.

Writes into ``OUT``:

- ``volumes.csv``: one row per test subject, direction and candidate (model or baseline);
- ``summary.json``: per direction and candidate, the mean over participants of each measure,
  whether each model beats the lookup (per measure, and in how many participants), paired
  Wilcoxon tests model vs lookup across participants when there are at least
  ``MIN_PARTICIPANTS_FOR_TEST``, the runs' checkpoint digests, the normalisation and the lookup;
- ``summary.md``: the table as Markdown;
- ``slices/<subject>.npz``: the mid-brain axial slice of the input, the real target and every
  candidate (normalised, [0, 1]) for the report's figure;
- with ``save_volumes``: ``nifti/<subject>/<candidate>_<direction>.nii.gz``, the synthetic
  volumes in the input's grid.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from mrtranslate import __version__
from mrtranslate.data.dataset import Dataset, VolumeSource, open_dataset
from mrtranslate.data.volumes import (
    axial_slice,
    canonical,
    check_same_grid,
    default_brain_mask,
    from_canonical,
    load_volume,
)
from mrtranslate.directions import DIRECTIONS, Direction
from mrtranslate.errors import UsageError
from mrtranslate.evaluation.reuse import current_evaluation, known_slices
from mrtranslate.evaluation.volume_baselines import BASELINES, IntensityLookup
from mrtranslate.evaluation.volume_measures import (
    HIGHER_IS_BETTER,
    LABELS,
    LESION_MEASURES,
    PERCENTILE,
    VOLUME_MEASURES,
    normalise_volume,
    volume_measures,
)
from mrtranslate.fileio import atomic_write, file_digest, write_json_atomic, write_text_atomic
from mrtranslate.inference.volumes import save_nifti_atomic, translate_volume
from mrtranslate.progress import progress_bar
from mrtranslate.runs import layout, load_run

MIN_PARTICIPANTS_FOR_TEST = 6  # a two-sided Wilcoxon test cannot reach p < 0.05 with fewer
NORMALISATION = (
    f"each volume (real, synthetic, baseline) divided by the {PERCENTILE}th percentile of its "
    "own voxels inside the brain (negatives clipped to 0), clipped to [0, 1], zero outside; "
    "data range 1; measures over brain voxels; 3-D SSIM over the brain's bounding box "
    "(Gaussian sigma 1.5 voxels, K1 0.01, K2 0.03) averaged over the brain"
)


@dataclass
class Participant:
    """One subject's volumes in RAS+ (canonical) orientation, with its brain and lesion masks."""

    source: VolumeSource
    image: dict[str, nib.Nifti1Image]
    volume: dict[str, np.ndarray]
    brain: np.ndarray
    lesion: np.ndarray | None


def load_participant(source: VolumeSource) -> Participant:
    """Load and check a subject's T1w, T2w, brain mask (file, else the filled non-zero region
    of both contrasts) and lesion mask."""
    label = f"subject {source.subject}"
    images = {
        "t1w": load_volume(source.t1w, f"{label} T1w"),
        "t2w": load_volume(source.t2w, f"{label} T2w"),
    }
    check_same_grid(images["t1w"], images["t2w"], label)
    volumes = {c: canonical(img) for c, img in images.items()}
    masks = {}
    for what, path in (("mask", source.mask), ("lesion", source.lesion)):
        if path is not None:
            loader = load_volume if what == "mask" else _load_lesion
            mask_image = loader(path, f"{label} {what}")
            check_same_grid(images["t1w"], mask_image, f"{label} {what}")
            masks[what] = canonical(mask_image) > 0
    brain = masks.get("mask")
    if brain is None:
        brain = default_brain_mask(volumes["t1w"], volumes["t2w"])
    return Participant(source, images, volumes, brain, masks.get("lesion"))


def _load_lesion(path: Path, what: str) -> nib.Nifti1Image:
    """A lesion mask may be all zeros (no lesion on this subject): load it without that check."""
    try:
        return load_volume(path, what)
    except UsageError as exc:
        if "all zeros" not in str(exc):
            raise
        image = nib.load(str(path))
        return nib.Nifti1Image(np.zeros(image.shape[:3], np.float32), image.affine, image.header)


def mid_brain_slice(brain: np.ndarray) -> int:
    """The axial slice through the brain's centre of mass (RAS+, axis 2)."""
    return int(round(float(np.nonzero(brain)[2].mean())))


def fit_lookups(
    sources: list[VolumeSource], progress: bool = True
) -> dict[Direction, IntensityLookup]:
    """The intensity lookup of each direction, fitted on ``sources`` (the training split)."""
    pairs: dict[Direction, list] = {d: [] for d in DIRECTIONS}
    for source in progress_bar(sources, desc="lookup: training volumes", disable=not progress):
        person = load_participant(source)
        for d in DIRECTIONS:
            pairs[d].append(
                (source.participant, person.volume[d.source], person.volume[d.target], person.brain)
            )
    return {d: IntensityLookup.fit(pairs[d]) for d in DIRECTIONS}


def _check_volume_data(dataset: Dataset) -> tuple[list[VolumeSource], list[VolumeSource]]:
    train, test = dataset.volume_sources("train"), dataset.volume_sources("test")
    axis = (dataset.meta.get("import") or {}).get("axis", 2)
    if axis != 2:
        raise UsageError(
            f"{dataset.root} was sliced along axis {axis}; whole-volume evaluation translates "
            "axial slices (axis 2) only"
        )
    if not train or not test:
        raise UsageError(f"{dataset.root} needs training and test volumes to evaluate volumes")
    return train, test


def evaluate_volumes(
    runs: list[str | Path],
    out: str | Path,
    data_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 16,
    save_volumes: bool = False,
    progress: bool = True,
) -> dict:
    """Evaluate ``runs`` on the whole test volumes of their data set; returns the summary."""
    runs = [Path(r) for r in runs]
    loaded = [load_run(r, device=device) for r in runs]
    _check_one_run_per_model(loaded)
    data_dir = data_dir or (loaded[0].record.data_path if loaded else None)
    if not data_dir:
        raise UsageError(f"{runs[0]} does not record its data set; pass --data")
    dataset = open_dataset(data_dir)
    train, test = _check_volume_data(dataset)
    out = Path(out)
    lookups = fit_lookups(train, progress)
    rows, seconds = [], {}
    # slices the runs' evaluations already translated are taken from them (evaluation/reuse.py)
    reuse = {
        run.config.model: {"current_evaluation": current_evaluation(run, dataset), "slices": 0}
        for run in loaded
    }
    for source in progress_bar(test, desc="test volumes", unit="vol", disable=not progress):
        person = load_participant(source)
        rows += _judge(
            person,
            loaded,
            lookups,
            out,
            batch_size,
            save_volumes,
            seconds,
            progress,
            dataset=dataset,
            reuse=reuse,
        )
    summary = _volume_summary(rows, loaded, dataset, data_dir, lookups, test)
    summary |= {"translation_seconds": seconds, "reused_from_evaluation": reuse}
    _write(out, rows, summary)
    return summary


def _volume_summary(rows: list[dict], loaded: list, dataset, data_dir, lookups, test) -> dict:
    """The summary of the volume table (pooled and per site) and what it was made from."""
    for row in rows:
        row["site"] = dataset.site_of(row["subject"])
    names = {run.config.model: run.display_name for run in loaded}
    summary = summarise_volumes(rows, names)
    sites = list(dict.fromkeys(row["site"] for row in rows))
    if len(sites) > 1:  # each site's participants alone, beside the pooled table
        summary["sites"] = {
            site: summarise_volumes([r for r in rows if r["site"] == site], names) for site in sites
        }
    summary |= {
        "data": str(Path(data_dir).resolve()),
        "citation": dataset.citation,
        "normalisation": NORMALISATION,
        "lookup": {
            str(d): {"fitted_on": lk.fitted_on, "voxels": lk.voxels, "bins": lk.table.size}
            for d, lk in lookups.items()
        },
        "test_subjects": [s.subject for s in test],
        "runs": {
            run.config.model: {
                "run": str(run.run_dir),
                "checkpoint": file_digest(layout.checkpoint_path(run.run_dir)),
                "working_shape": list(run.model_image_shape),
            }
            for run in loaded
        },
        "mrtranslate_version": __version__,
    }
    return summary


def _check_one_run_per_model(loaded: list) -> None:
    """The table has one row per model: two runs of one model would overwrite each other."""
    seen: dict[str, Path] = {}
    for run in loaded:
        model = run.config.model
        if model in seen:
            raise UsageError(
                f"{seen[model]} and {run.run_dir} are both {run.display_name} runs; the volume "
                "table has one row per model: evaluate them in separate --out folders"
            )
        seen[model] = run.run_dir


def volumes_current(folder: str | Path, runs: list[str | Path]) -> bool:
    """Whether ``folder`` holds a volume evaluation of exactly ``runs`` at their current
    checkpoints (compared by digest, not by file time)."""
    path = Path(folder) / "summary.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["runs"]
        wanted = {Path(r).name: file_digest(layout.checkpoint_path(r)) for r in runs}
        return {Path(v["run"]).name: v["checkpoint"] for v in recorded.values()} == wanted
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _judge(
    person: Participant,
    loaded: list,
    lookups: dict,
    out: Path,
    batch_size: int,
    save_volumes: bool,
    seconds: dict,
    progress: bool = False,
    dataset: Dataset | None = None,
    reuse: dict | None = None,
) -> list[dict]:
    """Translate one participant's volumes both ways with every run, measure them and the
    baselines, save the mid-brain slices; returns the rows (``seconds`` gets the timings).

    ``reuse[model]``: ``current_evaluation`` (whether the run's evaluation on ``dataset`` may be
    reused, :func:`~mrtranslate.evaluation.reuse.current_evaluation`) and ``slices``, the count
    of slices taken from it so far (updated here)."""
    source, rows = person.source, []
    mid = mid_brain_slice(person.brain)
    slices: dict[str, np.ndarray] = {}
    for direction in DIRECTIONS:
        real = person.volume[direction.target]
        candidates = _baselines(person, direction, lookups[direction])
        label = f"{source.subject} {direction}: translating"
        for run in progress_bar(loaded, desc=label, unit="model", disable=not progress):
            t0 = time.perf_counter()
            candidates[run.config.model] = _translate(
                run, person, direction, batch_size, dataset, (reuse or {}).get(run.config.model)
            )
            seconds[f"{source.subject} {run.config.model} {direction}"] = time.perf_counter() - t0
        slices[f"{direction}/input"] = _mid(person.volume[direction.source], person, mid)
        slices[f"{direction}/real"] = _mid(real, person, mid)
        for name, synthetic in candidates.items():
            rows.append(
                {
                    "participant": source.participant,
                    "subject": source.subject,
                    "direction": str(direction),
                    "candidate": name,
                    "kind": "baseline" if name in BASELINES else "model",
                    **volume_measures(real, synthetic, person.brain, person.lesion),
                }
            )
            slices[f"{direction}/{name}"] = _mid(synthetic, person, mid)
            if save_volumes and name not in BASELINES:
                _save_volume(out, person, direction, name, synthetic)
    _save_slices(out / "slices" / f"{source.subject}.npz", slices, mid)
    return rows


def _translate(
    run, person: Participant, direction: Direction, batch_size: int, dataset, reuse: dict | None
) -> np.ndarray:
    """``person``'s source volume translated by ``run``, taking the slices its evaluation
    already translated when ``reuse`` says that evaluation is current (and counting them)."""
    known = None
    if dataset is not None and reuse and reuse.get("current_evaluation"):
        known = known_slices(run, dataset, person.source.subject, direction)
    synthetic = translate_volume(
        run,
        person.volume[direction.source],
        direction,
        person.brain,
        batch_size,
        zooms=person.image[direction.source].header.get_zooms()[:3],
        known=known,
    )
    if known is not None:
        reuse["slices"] += known.reused
    return synthetic


def _baselines(person: Participant, direction: Direction, lookup: IntensityLookup) -> dict:
    return {
        "copy": person.volume[direction.source],
        "lookup": lookup.apply(person.volume[direction.source], person.brain),
    }


def _mid(volume: np.ndarray, person: Participant, k: int) -> np.ndarray:
    """The normalised axial slice ``k`` shown with anterior at the top (float32)."""
    return axial_slice(normalise_volume(volume, person.brain), k).astype(np.float32)


def _save_slices(path: Path, slices: dict[str, np.ndarray], k: int) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, slice_index=np.array(k), **slices)

    atomic_write(path, write)


def _save_volume(out: Path, person: Participant, direction, name: str, synthetic) -> None:
    reference = person.image[direction.source]
    header = reference.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    data = from_canonical(np.asarray(synthetic, np.float32), reference)
    path = out / "nifti" / person.source.subject / f"{name}_{direction}.nii.gz"
    save_nifti_atomic(path, nib.Nifti1Image(data, reference.affine, header))


def summarise_volumes(rows: list[dict], display_names: dict[str, str]) -> dict:
    """Per direction and candidate: mean over participants of each measure; per model and
    measure whether it beats the lookup (mean, and in how many participants); paired tests."""
    measures = [m for m in (*VOLUME_MEASURES, *LESION_MEASURES) if any(m in r for r in rows)]
    out: dict = {"measures": measures, "directions": {}, "display_names": display_names}
    for direction in DIRECTIONS:
        here = [r for r in rows if r["direction"] == str(direction)]
        candidates = list(dict.fromkeys(r["candidate"] for r in here))
        table = {}
        for name in candidates:
            mine = {r["participant"]: r for r in here if r["candidate"] == name}
            entry = {"kind": "baseline" if name in BASELINES else "model", "n": len(mine)}
            entry["mean"] = {
                m: _mean([r.get(m, math.nan) for r in mine.values()]) for m in measures
            }
            table[name] = entry
        lookup = {r["participant"]: r for r in here if r["candidate"] == "lookup"}
        for name, entry in table.items():
            if entry["kind"] == "model":
                mine = {r["participant"]: r for r in here if r["candidate"] == name}
                entry["versus_lookup"] = {
                    m: _versus(mine, lookup, m) for m in measures if m in ("mae", "r", "ssim")
                }
                entry["beats_lookup"] = all(v["better"] for v in entry["versus_lookup"].values())
        out["directions"][str(direction)] = table
    return out


def _mean(values: list[float]) -> float:
    finite = [v for v in values if isinstance(v, float | int) and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def better(measure: str, a: float, b: float) -> bool:
    """Is value ``a`` of ``measure`` better than ``b``?"""
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    rule = HIGHER_IS_BETTER[measure]
    if rule is None:
        return abs(a - 1) < abs(b - 1)
    return a > b if rule else a < b


def _versus(mine: dict, lookup: dict, measure: str) -> dict:
    """A model against the lookup on one measure, paired by participant."""
    from scipy import stats

    common = sorted(set(mine) & set(lookup))
    a = np.array([mine[p][measure] for p in common], dtype=np.float64)
    b = np.array([lookup[p][measure] for p in common], dtype=np.float64)
    result = {
        "better": better(measure, _mean(list(a)), _mean(list(b))),
        "participants_better": int(sum(better(measure, x, y) for x, y in zip(a, b))),
        "n": len(common),
        "mean_difference": _mean(list(a - b)),
    }
    if len(common) >= MIN_PARTICIPANTS_FOR_TEST and np.any(a != b):
        result["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
    else:
        result["wilcoxon_p"] = None
        result["test_note"] = (
            f"no paired test: {len(common)} participant(s), at least "
            f"{MIN_PARTICIPANTS_FOR_TEST} needed for p < 0.05 to be possible"
        )
    return result


CSV_FIELDS = ["participant", "subject", "site", "direction", "candidate", "kind"]


def _write(out: Path, rows: list[dict], summary: dict) -> None:
    fields = CSV_FIELDS + summary["measures"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text_atomic(out / "volumes.csv", buf.getvalue())
    write_text_atomic(out / "summary.md", volume_markdown(summary) + "\n")
    write_json_atomic(out / "summary.json", summary)


BASELINE_LABELS = {"copy": "copy input (baseline)", "lookup": "intensity lookup (baseline)"}


def candidate_label(name: str, summary: dict) -> str:
    return BASELINE_LABELS.get(name) or summary.get("display_names", {}).get(name, name)


def volume_markdown(summary: dict) -> str:
    """The volume table: per direction, baselines first, then models; a model that does not
    beat the lookup on a measure (MAE, r, SSIM) is marked with a dagger (†)."""
    measures = summary["measures"]
    lines = [
        "| direction | candidate | " + " | ".join(LABELS[m] for m in measures) + " | n |",
        "|---|---|" + "---|" * (len(measures) + 1),
    ]
    for direction, table in summary["directions"].items():
        order = [n for n in BASELINES if n in table] + [n for n in table if n not in BASELINES]
        for name in order:
            entry = table[name]
            cells = []
            for m in measures:
                value = entry["mean"][m]
                mark = ""
                versus = entry.get("versus_lookup", {}).get(m)
                if versus is not None and not versus["better"]:
                    mark = " †"
                cells.append(("n/a" if not math.isfinite(value) else f"{value:.3f}") + mark)
            lines.append(
                f"| {direction} | {candidate_label(name, summary)} | "
                + " | ".join(cells)
                + f" | {entry['n']} |"
            )
    lines.append("")
    lines.append("† does not beat the intensity lookup on this measure (mean over participants).")
    for site, alone in summary.get("sites", {}).items():
        table = volume_markdown(dict(alone, display_names=summary.get("display_names", {})))
        lines += ["", f"### Site {site}", "", table]
    return "\n".join(lines)
