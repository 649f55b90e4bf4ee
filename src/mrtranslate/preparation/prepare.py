"""``mrtranslate data prepare``: raw T1w/T2w sessions in, a co-registered BIDS derivative out.

Per participant and session of a BIDS folder (``sub-*/[ses-*/]anat/*_T1w.nii[.gz]`` with its
``*_T2w``), with SimpleITK (see :mod:`mrtranslate.preparation.registration` for why):

1. read both images; the T1w is reoriented to a standard axis order (LPS, axial slices);
2. correct the bias field of each (N4, on a 4x shrunk image inside the head; ``--no-n4``
   skips it);
3. register the T2w rigidly onto the T1w by mutual information (multi-resolution);
4. extract the brain (the MNI152 brain carried by affine registration,
   :mod:`mrtranslate.preparation.brain`);
5. resample T1w, T2w and mask onto one grid: isotropic at ``--spacing`` mm over the T1w's field
   of view (default 1 mm, the shared training data's), or the T1w's own grid
   (``--spacing native``);
6. score the registration (normalised mutual information of T1w and registered T2w inside the
   head, against the scanner's alignment and against the result moved 4 mm each way) and flag
   a session that looks failed (:func:`registration_flags`);
7. write, under ``OUT``, a BIDS derivative that ``data import --format bids`` reads::

       dataset_description.json                              DatasetType derivative
       sub-L01/ses-1/anat/sub-L01_ses-1_desc-preproc_T1w.nii.gz   (+ .json: every step)
       sub-L01/ses-1/anat/sub-L01_ses-1_desc-preproc_T2w.nii.gz   T2w on the T1w's grid
       sub-L01/ses-1/anat/sub-L01_ses-1_desc-brain_mask.nii.gz
       sub-L01/ses-1/anat/sub-L01_ses-1_from-T2w_to-T1w_mode-image_xfm.txt   ITK, LPS
       qc/sub-L01_ses-1_qc.png      registered T2w edges over the T1w, mask outline
       summary.json, summary.tsv    per session: score, flag and why, seconds per step

A flagged session is never used silently: its files go under ``OUT/flagged/`` instead (same
layout, outside the BIDS tree, so ``data import`` does not see it), it is listed under
``flagged`` in ``summary.json`` with the reasons, and the command says so; look at its QC
picture and move it into the tree if it is in fact fine (or ``--keep-flagged``).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mrtranslate import __version__
from mrtranslate.errors import UsageError
from mrtranslate.fileio import atomic_directory, write_json_atomic, write_text_atomic
from mrtranslate.preparation.brain import extract_brain
from mrtranslate.preparation.registration import (
    BINS,
    PEAK_SHIFT_MM,
    SAMPLING,
    SHRINK,
    SMOOTH_MM,
    from_nibabel,
    head_mask,
    isotropic,
    register_rigid,
    registration_score,
    sitk,
)

# A registration looks failed when (measured on the shared raw sessions, see the docs): its
# result is not a peak of shared information: on the three raw sessions the registered pairs
# beat themselves moved 4 mm by 0.026-0.060 (NMI), the same pairs 12 mm or 12 degrees off, and
# a T2w registered onto another patient's T1w, by -0.002 to +0.002
MIN_PEAK_MARGIN = 0.01
MAX_ROTATION_DEGREES = 15.0  # one session: the head does not turn this much between series
MAX_TRANSLATION_MM = 25.0  # nor move this far
MIN_OVERLAP = 0.5  # share of the T1w's head inside the T2w's field of view (scanner coords)


@dataclass(frozen=True)
class PrepareOptions:
    """``spacing``: the output grid's isotropic voxel size in mm (None: the T1w's own grid);
    ``n4``: correct the bias field first; ``threads``: SimpleITK threads (None: all)."""

    spacing: float | None = 1.0
    n4: bool = True
    threads: int | None = None


@dataclass
class SessionResult:
    """What preparing one session did and found (a row of ``summary.json``)."""

    session: str
    participant: str
    nmi: float
    nmi_scanner: float
    peak_margin: float
    rotation_degrees: float
    translation_mm: float
    overlap: float
    brain_ml: float
    flagged: bool
    reasons: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def registration_flags(score: dict[str, float], rotation: float, translation: float) -> list[str]:
    """Why a registration looks failed (empty: it does not), from its
    :func:`~mrtranslate.preparation.registration.registration_score` and motion: not a peak
    of shared information, less shared information than the scanner's own alignment, or a
    motion no head makes within a session."""
    reasons = []
    if score["peak_margin"] < MIN_PEAK_MARGIN:
        reasons.append(
            f"not a peak of mutual information (NMI margin {score['peak_margin']:+.3f} over "
            f"the result moved {PEAK_SHIFT_MM:g} mm; < {MIN_PEAK_MARGIN})"
        )
    if score["nmi"] < score["nmi_scanner"]:
        reasons.append(
            f"worse than the scanner's alignment (NMI {score['nmi']:.3f} vs "
            f"{score['nmi_scanner']:.3f})"
        )
    if rotation > MAX_ROTATION_DEGREES:
        reasons.append(f"rotated {rotation:.1f} degrees (> {MAX_ROTATION_DEGREES:g})")
    if translation > MAX_TRANSLATION_MM:
        reasons.append(f"moved {translation:.1f} mm (> {MAX_TRANSLATION_MM:g})")
    return reasons


def read_volume(path: Path, what: str):
    """A 3-D NIfTI as a float32 SimpleITK image, with the one-line errors of
    :func:`~mrtranslate.data.volumes.load_volume` (missing, damaged, 2-D, NaN, all zeros)."""
    from mrtranslate.data.volumes import load_volume

    image = load_volume(path, what)
    return from_nibabel(np.asarray(image.dataobj, dtype=np.float32), image.affine)


def n4(image, threads: int | None = None):
    """N4 bias-field correction (Tustison et al. 2010) fitted on a 4x shrunk copy inside the
    head, applied at full resolution: image / exp(log bias field)."""
    s = sitk()
    shrunk = s.Shrink(image, [4, 4, 1] if image.GetSpacing()[2] > 2 else [4, 4, 4])
    corrector = s.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([50, 50, 30])
    if threads:
        corrector.SetNumberOfThreads(threads)
    corrector.Execute(shrunk, head_mask(shrunk))
    log_bias = corrector.GetLogBiasFieldAsImage(image)
    return s.Cast(image / s.Exp(log_bias), s.sitkFloat32)


def head_overlap(t1w, t2w) -> float:
    """Share of the T1w's head voxels whose scanner position lies in the T2w's field of view."""
    s = sitk()
    head = s.GetArrayViewFromImage(head_mask(t1w)) > 0
    field_of_view = s.Image(t2w.GetSize(), s.sitkUInt8) + 1
    field_of_view.CopyInformation(t2w)
    inside = s.Resample(field_of_view, t1w, s.Transform(), s.sitkNearestNeighbor, 0)
    hits = s.GetArrayViewFromImage(inside)[head]
    return float(hits.mean()) if hits.size else 0.0


def _on_one_grid(t1w, t2w, brain_mask, transform, spacing: float | None) -> dict:
    """T1w, T2w (through ``transform``, linear) and mask (nearest) on the output grid: the
    T1w's own (``spacing`` None) or isotropic ``spacing`` mm over its field of view."""
    s = sitk()
    grid = t1w if spacing is None else isotropic(t1w, spacing)
    return {
        "t1w": s.Resample(t1w, grid, s.Transform(), s.sitkLinear, 0.0, s.sitkFloat32),
        "t2w": s.Resample(t2w, grid, transform, s.sitkLinear, 0.0, s.sitkFloat32),
        "mask": s.Resample(brain_mask, grid, s.Transform(), s.sitkNearestNeighbor, 0, s.sitkUInt8),
    }


def prepare_session(
    files, root: Path, out: Path, options: PrepareOptions, keep_flagged: bool = False
) -> SessionResult:
    """Prepare one T1w/T2w pair (``files``: :class:`~mrtranslate.data.importers.SubjectFiles`
    of the raw BIDS folder ``root``) into the derivative folder ``out`` (a flagged one into
    ``out/flagged`` unless ``keep_flagged``); returns what was done and found."""
    s = sitk()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 2)
        clock = now

    t1w = s.DICOMOrient(read_volume(files.t1w, "T1w"), "LPS")
    t2w = read_volume(files.t2w, "T2w")
    overlap = head_overlap(t1w, t2w)
    if overlap < MIN_OVERLAP:
        raise UsageError(
            f"{files.subject}: the T2w covers {overlap:.0%} of the T1w's head in scanner "
            f"coordinates (< {MIN_OVERLAP:.0%}); the pair does not overlap"
        )
    lap("read")
    if options.n4:
        t1w, t2w = n4(t1w, options.threads), n4(t2w, options.threads)
        lap("n4")
    registration = register_rigid(t1w, t2w, options.threads)
    lap("register")
    brain = extract_brain(t1w, options.threads)
    lap("brain")
    images = _on_one_grid(t1w, t2w, brain.mask, registration.transform, options.spacing)
    lap("resample")
    score = registration_score(t1w, t2w, registration.transform)
    lap("score")
    reasons = registration_flags(score, registration.rotation_degrees, registration.translation_mm)
    mask_out = images["mask"]
    brain_voxels = int(np.count_nonzero(s.GetArrayViewFromImage(mask_out)))
    result = SessionResult(
        session=files.subject,
        participant=files.participant,
        nmi=round(score["nmi"], 4),
        nmi_scanner=round(score["nmi_scanner"], 4),
        peak_margin=round(score["peak_margin"], 4),
        rotation_degrees=round(registration.rotation_degrees, 3),
        translation_mm=round(registration.translation_mm, 3),
        overlap=round(overlap, 3),
        brain_ml=round(brain_voxels * float(np.prod(mask_out.GetSpacing())) / 1000, 1),
        flagged=bool(reasons),
        reasons=reasons,
        seconds=seconds,
    )
    place = out / "flagged" if result.flagged and not keep_flagged else out
    anat = place / files.t1w.parent.relative_to(root)
    written = _write_session(anat, out, files, options, result, registration, images)
    result.files = {k: str(p.relative_to(out)) for k, p in written.items()}
    lap("write")
    return result


def _write_session(
    anat: Path, out: Path, files, options, result, registration, images: dict
) -> dict[str, Path]:
    """The session's images, sidecars and transform into ``anat``, its QC picture into
    ``out/qc``; returns their paths."""
    from mrtranslate.preparation.qc import save_qc

    s = sitk()
    anat.mkdir(parents=True, exist_ok=True)
    stem = files.subject
    paths = {
        "t1w": anat / f"{stem}_desc-preproc_T1w.nii.gz",
        "t2w": anat / f"{stem}_desc-preproc_T2w.nii.gz",
        "mask": anat / f"{stem}_desc-brain_mask.nii.gz",
        "transform": anat / f"{stem}_from-T2w_to-T1w_mode-image_xfm.txt",
        "qc": out / "qc" / f"{stem}_qc.png",
    }
    for key, image in images.items():
        s.WriteImage(image, str(paths[key]), True)
    s.WriteTransform(registration.transform, str(paths["transform"]))
    steps = _steps(options, registration)
    for key, source in (("t1w", files.t1w), ("t2w", files.t2w), ("mask", files.t1w)):
        sidecar = {"Sources": [str(Path(source).resolve())], "Steps": steps[key]}
        if key == "mask":
            sidecar["Type"] = "Brain"
        else:
            sidecar["SpatialReference"] = "the session's T1w field of view, LPS axes"
            sidecar["RegistrationScore"] = {
                "nmi": result.nmi,
                "nmi_scanner": result.nmi_scanner,
                "peak_margin": result.peak_margin,
            }
            sidecar["Flagged"], sidecar["FlagReasons"] = result.flagged, result.reasons
        write_json_atomic(Path(str(paths[key]).replace(".nii.gz", ".json")), sidecar)
    title = f"{stem}: NMI {result.nmi:.3f}" + (" (FLAGGED)" if result.flagged else "")
    save_qc(paths["qc"], images["t1w"], images["t2w"], images["mask"], title)
    return paths


def _steps(options: PrepareOptions, registration) -> dict[str, list[str]]:
    grid = (
        "the T1w's own grid"
        if options.spacing is None
        else f"isotropic {options.spacing:g} mm over the T1w's field of view"
    )
    n4_step = ["N4 bias-field correction (SimpleITK, 4x shrunk, inside the head)"]
    common = ["reoriented to LPS axes"] + (n4_step if options.n4 else [])
    return {
        "t1w": [*common, f"resampled (linear) onto {grid}"],
        "t2w": [
            *(n4_step if options.n4 else []),
            "registered rigidly onto the T1w: Mattes mutual information "
            f"({BINS} bins, {SAMPLING:.0%} of the head's voxels), regular-step gradient "
            f"descent, shrink {SHRINK}, smoothing {SMOOTH_MM} mm; "
            f"stopped: {registration.stop}",
            f"resampled (linear) through that transform onto {grid}",
        ],
        "mask": [
            "MNI152 2009a brain (nilearn) registered affinely onto the T1w (mutual "
            "information), carried onto the T1w (> 0.5), holes filled",
            f"resampled (nearest) onto {grid}",
        ],
    }


def find_raw_sessions(root: Path) -> list:
    """Every T1w/T2w pair of a raw BIDS folder (derivatives are never inputs)."""
    from mrtranslate.data.importers import find_bids

    if not root.is_dir():
        raise UsageError(f"raw data folder not found: {root}")
    sessions = [f for f in find_bids(root) if "derivatives" not in f.t1w.relative_to(root).parts]
    if not sessions:
        raise UsageError(f"no sub-*/[ses-*/]anat/*_T1w.nii[.gz] with a T2w under {root}")
    return sessions


def prepare_bids(
    root: str | Path,
    out: str | Path,
    options: PrepareOptions = PrepareOptions(),
    overwrite: bool = False,
    keep_flagged: bool = False,
    say: Callable[[str], None] = print,
) -> dict:
    """Prepare every session of the raw BIDS folder ``root`` into the derivative ``out``
    (built in a temporary folder, moved into place when every session is done); returns
    the summary."""
    from mrtranslate.data.build import check_output_folder

    root, out = Path(root), Path(out)
    sessions = find_raw_sessions(root)
    check_output_folder(out, overwrite)
    results = []
    with atomic_directory(out, overwrite) as tmp:
        for number, files in enumerate(sessions, 1):
            say(f"[{number}/{len(sessions)}] {files.subject}: preparing")
            result = prepare_session(files, root, tmp, options, keep_flagged)
            mark = "FLAGGED: " + "; ".join(result.reasons) if result.flagged else "ok"
            say(
                f"[{number}/{len(sessions)}] {files.subject}: NMI {result.nmi:.3f} "
                f"(scanner {result.nmi_scanner:.3f}), moved {result.translation_mm:.1f} mm, "
                f"{result.rotation_degrees:.1f} deg, brain {result.brain_ml:.0f} ml, "
                f"{sum(result.seconds.values()):.0f} s: {mark}"
            )
            results.append(result)
        summary = _summary(root, options, results)
        _write_description(tmp, root)
        write_json_atomic(tmp / "summary.json", summary)
        write_text_atomic(tmp / "summary.tsv", _tsv(results))
        write_text_atomic(tmp / ".bidsignore", "qc/\nflagged/\nsummary.*\n*_xfm.txt\n")
    if summary["flagged"]:
        say(
            f"{len(summary['flagged'])} session(s) flagged and kept out of the BIDS tree "
            f"(under {out / 'flagged'}): {', '.join(summary['flagged'])}; see their QC pictures"
        )
    return summary


def _summary(root: Path, options: PrepareOptions, results: list[SessionResult]) -> dict:
    return {
        "source": str(root.resolve()),
        "options": asdict(options),
        "thresholds": {
            "min_peak_margin": MIN_PEAK_MARGIN,
            "peak_shift_mm": PEAK_SHIFT_MM,
            "max_rotation_degrees": MAX_ROTATION_DEGREES,
            "max_translation_mm": MAX_TRANSLATION_MM,
            "min_overlap": MIN_OVERLAP,
        },
        "sessions": [asdict(r) for r in results],
        "flagged": [r.session for r in results if r.flagged],
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "mrtranslate_version": __version__,
    }


def _tsv(results: list[SessionResult]) -> str:
    columns = ["session", "nmi", "nmi_scanner", "peak_margin", "rotation_degrees"]
    columns += ["translation_mm"]
    columns += ["brain_ml", "flagged"]
    lines = ["\t".join([*columns, "seconds", "reasons"])]
    for r in results:
        row = [str(getattr(r, c)) for c in columns]
        lines.append("\t".join([*row, f"{sum(r.seconds.values()):.1f}", "; ".join(r.reasons)]))
    return "\n".join(lines) + "\n"


def _write_description(out: Path, root: Path) -> None:
    from mrtranslate.data.importers import bids_citation

    description = {
        "Name": f"{root.name} prepared by mrtranslate",
        "BIDSVersion": "1.10.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "mrtranslate", "Version": __version__}],
        "SourceDatasets": [{"URL": root.resolve().as_uri()}],
    }
    citation = bids_citation(root)
    if citation:
        description["HowToAcknowledge"] = citation
    write_json_atomic(out / "dataset_description.json", description)
