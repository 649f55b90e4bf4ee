"""Importers of real data into the standard data-set layout (see :mod:`mrtranslate.data.dataset`).

Formats:

- ``hcp``: ``<subject>/MNINonLinear/T1w_restore_brain.nii.gz`` and ``T2w_restore_brain.nii.gz``;
  default axial slice 120 (the paper's), default size 304x256, mask = non-zero voxels;
- ``bids``: ``sub-*/[ses-*/]anat/*_T1w.nii[.gz]`` with the matching ``*_T2w.nii[.gz]`` (same
  name up to the suffix) and an optional ``*_mask.nii[.gz]``; default: the middle axial slice;
- ``pairs``: a CSV with columns ``subject,t1w,t2w[,mask]`` (paths relative to the CSV or absolute);
- ``folders``: ``trainA/ trainB/ testA/ testB/`` with PNG or TIFF images (8- or 16-bit, A = T1w,
  B = T2w), paired by sorted file name with ``--paired``.

Volumes are checked (3-D, finite, not all zero, T1w/T2w on the same grid) with one-line errors
that name the subject; intensity handling is described in :mod:`mrtranslate.data.volumes`.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrtranslate import __version__
from mrtranslate.data.build import check_output_folder
from mrtranslate.data.dataset import (
    FORMAT,
    FORMAT_VERSION,
    SplitWriter,
    VolumeSource,
    meta_path,
    split_subjects,
)
from mrtranslate.data.volumes import (
    MAX_VOXEL_RATIO,
    SCALES,
    canonical,
    check_same_grid,
    default_brain_mask,
    display_slices,
    fit_to,
    load_volume,
    parse_slices,
    scale_slice,
    volume_divisor,
)
from mrtranslate.errors import UsageError
from mrtranslate.fileio import atomic_directory, write_json_atomic
from mrtranslate.progress import progress_bar

FORMATS = ("hcp", "bids", "pairs", "folders")
INTENSITY_NOTE = (
    "per image: negatives clipped to 0, divided by the 99.5th percentile inside the brain mask, "
    "clipped to [0, 1]; the divisor is stored as scale_t1w / scale_t2w"
)
VOLUME_INTENSITY_NOTE = (
    "per volume: negatives clipped to 0, every slice divided by the 99.5th percentile of the "
    "brain voxels of its whole volume, clipped to [0, 1]; the divisor is stored as scale_t1w / "
    "scale_t2w"
)
NIFTI_SUFFIXES = (".nii.gz", ".nii")
# How each plane's slices are shown (RAS+ axis -> name, rows, columns)
PLANE_ORIENTATION = {
    2: "axial; rows anterior->posterior, columns left->right",
    1: "coronal; rows superior->inferior, columns left->right",
    0: "sagittal; rows superior->inferior, columns posterior->anterior",
}
ORIENTATION = PLANE_ORIENTATION[2]
PLANES_ORIENTATION = (
    "train: axial, coronal and sagittal slices (planes.npy: 2, 1, 0), test: axial; axial rows "
    "anterior->posterior, columns left->right; coronal rows superior->inferior, columns "
    "left->right; sagittal rows superior->inferior, columns posterior->anterior"
)


@dataclass
class ImportOptions:
    """Options shared by the importers."""

    slices: str | None = None
    axis: int = 2
    size: tuple[int, int] | None = None
    test_fraction: float = 0.2
    test_subjects_file: str | None = None
    seed: int = 0
    paired: bool = True
    csv: str | None = None  # --format pairs: the CSV listing subject,t1w,t2w[,mask]
    participant_pattern: str | None = None  # --format folders: regex; group 1 of a file stem
    citation: str | None = None  # how to cite the data (default: read from a BIDS root)
    scale: str = "auto"  # intensity scale: volume, slice, or auto (volume if >1 slice each)
    # 3: the training subjects' brain slices along all three axes (axial, coronal, sagittal),
    # the test subjects' axial slices; 1: slices along --axis only
    planes: int = 1


@dataclass
class SubjectFiles:
    """One T1w/T2w pair. ``subject`` names the pair (a BIDS file stem such as
    ``sub-01_ses-1``); ``participant`` is the person it belongs to (``sub-01``): the split keeps
    all pairs of a participant on one side."""

    subject: str
    t1w: Path
    t2w: Path
    mask: Path | None = None
    participant: str = ""
    lesion: Path | None = None
    site: str = ""

    def __post_init__(self) -> None:
        self.participant = self.participant or self.subject

    def source(self) -> VolumeSource:
        """What the data set records about this pair's files (absolute paths)."""
        paths = {
            k: (p.resolve() if p is not None else None)
            for k, p in (("t1w", self.t1w), ("t2w", self.t2w))
            + (("mask", self.mask), ("lesion", self.lesion))
        }
        return VolumeSource(self.subject, self.participant, **paths, site=self.site)


def _strip_nifti(name: str) -> str:
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_hcp(root: Path) -> list[SubjectFiles]:
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        t1 = folder / "MNINonLinear" / "T1w_restore_brain.nii.gz"
        t2 = folder / "MNINonLinear" / "T2w_restore_brain.nii.gz"
        if t1.exists() or t2.exists():
            if not t2.exists():
                raise UsageError(f"subject {folder.name}: {t2} is missing")
            if not t1.exists():
                raise UsageError(f"subject {folder.name}: {t1} is missing")
            found.append(SubjectFiles(folder.name, t1, t2))
    return found


def find_bids(root: Path) -> list[SubjectFiles]:
    found = []
    for t1 in sorted(root.glob("sub-*/**/anat/*_T1w.nii*")):
        stem = _strip_nifti(t1.name)[: -len("_T1w")]
        ext = t1.name[len(_strip_nifti(t1.name)) :]
        t2 = t1.with_name(f"{stem}_T2w{ext}")
        if not t2.exists():
            alternatives = list(t1.parent.glob(f"{stem}_T2w.nii*"))
            if not alternatives:
                raise UsageError(f"{stem}: no matching T2w for {t1}")
            t2 = alternatives[0]
        # a mask named after the pair (``<stem>*_mask``), or the session's brain mask beside a
        # ``desc-preproc`` pair (``data prepare``: ``sub-01_ses-1_desc-brain_mask``)
        session = "_".join(e for e in stem.split("_") if not e.startswith("desc-"))
        masks = [
            m
            for pattern in (f"{stem}*_mask.nii*", f"{session}_desc-brain_mask.nii*")
            for m in sorted(t1.parent.glob(pattern))
            if not LESION.search(m.name)
        ]
        participant = stem.split("_")[0]  # the sub-<label> entity: sessions, runs, acquisitions
        found.append(
            SubjectFiles(
                stem,
                t1,
                t2,
                masks[0] if masks else None,
                participant,
                _bids_lesion(root, t1.parent, stem),
            )
        )
    return found


# A lesion or tumour mask in BIDS derivatives: ``<stem>_[...]label-lesion[...].nii[.gz]``.
LESION = re.compile(r"_label-(lesions?|tumou?rs?|wmh)[_.]", re.IGNORECASE)


def _bids_lesion(root: Path, anat: Path, stem: str) -> Path | None:
    """The lesion/tumour mask of ``stem`` beside it or under ``root/derivatives/*/``."""
    relative = anat.relative_to(root)
    folders = [anat, *sorted((root / "derivatives").glob(f"*/{relative}"))]
    for folder in folders:
        for path in sorted(folder.glob(f"{stem}_*.nii*")):
            if LESION.search(path.name):
                return path
    return None


def bids_citation(root: Path) -> str | None:
    """How to cite a BIDS data set: ``dataset_description.json`` (``HowToAcknowledge``,
    ``ReferencesAndLinks``, ``DatasetDOI``), else the README paragraph that gives a DOI."""
    parts: list[str] = []
    description = root / "dataset_description.json"
    if description.is_file():
        try:
            meta = json.loads(description.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        for key in ("HowToAcknowledge", "ReferencesAndLinks", "DatasetDOI"):
            value = meta.get(key)
            values = value if isinstance(value, list) else [value]
            parts += [str(v).strip() for v in values if v and str(v).strip()]
    if not parts:
        for readme in sorted(root.glob("README*")):
            try:
                text = readme.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for paragraph in re.split(r"\n\s*\n", text):
                if re.search(r"\bdoi\b|doi\.org", paragraph, re.IGNORECASE):
                    parts.append(" ".join(paragraph.split()))
                    break
            if parts:
                break
    return " ".join(dict.fromkeys(parts)) or None


def find_pairs(csv_path: Path) -> list[SubjectFiles]:
    """The subjects listed in a CSV with columns subject,t1w,t2w[,mask] (paths relative to it)
    and optional participant, lesion and site columns.

    Every row is checked before anything is read: UTF-8 text, all columns present and filled,
    and every listed file found; errors name the row and the file.
    """
    if not csv_path.is_file():
        raise UsageError(f"--csv file not found: {csv_path}")
    try:
        with open(csv_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError:
        raise UsageError(f"{csv_path} is not UTF-8 text; save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise UsageError(f"{csv_path} is not a valid CSV file: {exc}") from None
    header = [h.strip() for h in rows[0]] if rows else []
    if not {"subject", "t1w", "t2w"} <= set(header):
        raise UsageError(f"{csv_path} needs the columns subject,t1w,t2w[,mask]")

    def resolve(text: str) -> Path:
        path = Path(text.strip())
        return path if path.is_absolute() else csv_path.parent / path

    found = []
    for number, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue  # blank line
        if len(values) < len(header):
            raise UsageError(f"{csv_path} line {number} has {len(values)} of {len(header)} columns")
        row = dict(zip(header, (v.strip() for v in values)))
        for column in ("subject", "t1w", "t2w"):
            if not row[column]:
                raise UsageError(f"{csv_path} line {number}: the {column} column is empty")
        files = SubjectFiles(
            row["subject"],
            resolve(row["t1w"]),
            resolve(row["t2w"]),
            resolve(row["mask"]) if row.get("mask") else None,
            row.get("participant", ""),
            resolve(row["lesion"]) if row.get("lesion") else None,
            row.get("site", ""),
        )
        checked = (("T1w", files.t1w), ("T2w", files.t2w), ("mask", files.mask))
        for what, path in (*checked, ("lesion mask", files.lesion)):
            if path is not None and not path.is_file():
                raise UsageError(
                    f"{csv_path} line {number} (subject {files.subject}): {what} file not "
                    f"found: {path}"
                )
        found.append(files)
    return found


def _volume_slices(
    files: SubjectFiles, options: ImportOptions, default_slice: int | None, axes=None
) -> dict[str, list[np.ndarray]]:
    """Load, check and slice one subject: lists of 2-D T1w, T2w and mask images and the axis
    each was cut along (``axes``: the axes to slice along, default ``options.axis``)."""
    label = f"subject {files.subject}"
    t1_img = load_volume(files.t1w, f"{label} T1w")
    t2_img = load_volume(files.t2w, f"{label} T2w")
    check_same_grid(t1_img, t2_img, label)
    t1, t2 = canonical(t1_img), canonical(t2_img)
    if files.mask is not None:
        mask_img = load_volume(files.mask, f"{label} mask")
        check_same_grid(t1_img, mask_img, f"{label} mask")
        mask = canonical(mask_img) > 0
    else:
        mask = default_brain_mask(t1, t2, axis=options.axis)
    if not 0 <= options.axis <= 2:
        raise UsageError(f"--axis must be 0, 1 or 2, got {options.axis}")
    axes = (options.axis,) if axes is None else axes
    if len(axes) > 1:
        import nibabel as nib

        _check_cubic(nib.as_closest_canonical(t1_img).header.get_zooms()[:3], label)
    out: dict = {"t1w": [], "t2w": [], "mask": [], "planes": [], "slice_index": []}
    for axis in axes:
        indices = parse_slices(options.slices, t1.shape[axis], default_slice, mask=mask, axis=axis)
        for name, volume in (("t1w", t1), ("t2w", t2), ("mask", mask)):
            out[name] += display_slices(volume, indices, axis)
        out["planes"] += [axis] * len(indices)
        out["slice_index"] += list(indices)
    if resolve_scale(options.scale, len(out["t1w"])) == "volume":
        out["divisor"] = {"t1w": volume_divisor(t1, mask), "t2w": volume_divisor(t2, mask)}
    return out


def _check_cubic(zooms, label: str) -> None:
    """Slices along every axis look alike only for near-cubic voxels (``--planes 3``)."""
    if max(zooms) > MAX_VOXEL_RATIO * min(zooms):
        size = "x".join(f"{z:g}" for z in zooms)
        raise UsageError(
            f"--planes 3 needs near-cubic voxels; {label} has {size} mm (use --planes 1)"
        )


def _check_planes(options: ImportOptions) -> None:
    if options.planes not in (1, 3):
        raise UsageError(f"--planes must be 1 or 3, got {options.planes}")
    if options.planes == 3 and (options.slices != "brain" or options.axis != 2):
        raise UsageError("--planes 3 takes every brain slice along each axis: use --slices brain")


def resolve_scale(scale: str, slices_per_subject: int) -> str:
    """``auto``: one scale per volume when several slices of it are imported, else per slice
    (the paper's per-image setting for one slice per subject)."""
    if scale not in ("auto", *SCALES):
        raise UsageError(f"--scale must be auto, volume or slice, got {scale!r}")
    if scale == "auto":
        return "volume" if slices_per_subject > 1 else "slice"
    return scale


def _spacing(files: SubjectFiles, axis: int) -> list[float]:
    import nibabel as nib

    zooms = nib.as_closest_canonical(nib.load(str(files.t1w))).header.get_zooms()[:3]
    in_plane = [float(z) for i, z in enumerate(zooms) if i != axis]
    return [in_plane[1], in_plane[0]]  # rows follow the second in-plane axis


def _default_size(shape: tuple[int, int]) -> tuple[int, int]:
    return tuple(max(32, -(-s // 4) * 4) for s in shape)  # round up to a multiple of 4


def _check_size(size: tuple[int, int]) -> None:
    if min(size) < 32 or size[0] % 4 or size[1] % 4:
        raise UsageError(f"--size must be at least 32 and divisible by 4, got {size[0]}x{size[1]}")


def _split(
    subjects: list[str], options: ImportOptions, sites: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """The participants of each split: ``--test-subjects`` when given, else a seeded random
    choice of ``--test-fraction`` of the participants of every site (``sites``: participant ->
    site; a site's share is rounded, at least one where a site has two or more)."""
    if len(set(subjects)) != len(subjects):
        dup = next(s for s in subjects if subjects.count(s) > 1)
        raise UsageError(f"subject {dup} appears more than once")
    if options.test_subjects_file:
        path = Path(options.test_subjects_file)
        if not path.exists() or path.is_dir():  # a pipe such as <(echo sub-07) is fine
            raise UsageError(f"--test-subjects file not found: {path}")
        test = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        unknown = sorted(set(test) - set(subjects))
        if unknown:
            raise UsageError(f"--test-subjects names unknown subject {unknown[0]}")
        test_set = set(test)
        splits = {
            "train": [s for s in subjects if s not in test_set],
            "test": [s for s in subjects if s in test_set],
        }
    else:
        if not 0 < options.test_fraction < 1:
            raise UsageError(
                f"--test-fraction must be between 0 and 1, got {options.test_fraction}"
            )
        splits = _stratified(subjects, sites or {}, options)
    if not splits["train"] or not splits["test"]:
        raise UsageError(
            f"the split leaves an empty split ({len(splits['train'])} train, "
            f"{len(splits['test'])} test subjects); import more subjects"
        )
    overlap = set(splits["train"]) & set(splits["test"])
    if overlap:
        raise UsageError(f"subject {sorted(overlap)[0]} is in both splits")
    return splits


def _stratified(
    subjects: list[str], sites: dict[str, str], options: ImportOptions
) -> dict[str, list[str]]:
    """A seeded random split with ``--test-fraction`` of every site's participants in test."""
    by_site: dict[str, list[str]] = {}
    for subject in subjects:
        by_site.setdefault(sites.get(subject, ""), []).append(subject)
    if len(by_site) == 1:
        count = max(1, round(options.test_fraction * len(subjects)))
        return split_subjects(subjects, count, options.seed)
    test: set[str] = set()
    for members in by_site.values():
        count = round(options.test_fraction * len(members))
        count = min(max(1, count), len(members) - 1) if len(members) > 1 else 0
        test |= set(split_subjects(members, count, options.seed)["test"])
    return {
        "train": [s for s in subjects if s not in test],
        "test": sorted(s for s in subjects if s in test),
    }


def site_roots(roots: list[str | Path]) -> list[tuple[str, Path]]:
    """``--root`` values as (site, folder): ``NAME=FOLDER`` names the site, a plain folder is
    named by its last component; two sources with one name are a usage error."""
    out = []
    for value in roots:
        text = str(value)
        name, _, folder = text.partition("=")
        if not folder or "/" in name or not name:
            name, folder = "", text
        path = Path(folder)
        out.append((name or path.resolve().name, path))
    names = [name for name, _ in out]
    for name in names:
        if names.count(name) > 1:
            raise UsageError(
                f"two --root sources are both called {name!r}: name them, e.g. "
                f"--root site-a=FOLDER --root site-b=FOLDER"
            )
    return out


def _find_all(fmt: str, roots: list[str | Path], options: ImportOptions) -> tuple[dict, list]:
    """The sources (site -> root folder or CSV file) and the subjects of all of them, each with
    its site; participants that two sites share an id with get the site's name in front
    (``brats-sub-01``), so that no two people are merged into one."""
    if fmt == "pairs":
        source, subjects = _find_subjects(fmt, Path("."), options)
        for files in subjects:
            files.site = files.site or source.stem
        sources = {site: source for site in dict.fromkeys(f.site for f in subjects)}
    else:
        sources, subjects = {}, []
        for site, root in site_roots(roots):
            sources[site], found = _find_subjects(fmt, root, options)
            for files in found:
                files.site = site
            subjects += found
    owners: dict[str, set[str]] = {}
    for files in subjects:
        owners.setdefault(files.participant, set()).add(files.site)
    for files in subjects:
        if len(owners[files.participant]) > 1:
            files.participant = f"{files.site}-{files.participant}"
            files.subject = f"{files.site}-{files.subject}"
    return sources, subjects


def _find_subjects(fmt: str, root: Path, options: ImportOptions) -> tuple[Path, list]:
    """The source (root folder or CSV file) and its subjects, each once; usage errors else."""
    if fmt == "pairs":
        if not options.csv:
            raise UsageError("--format pairs needs --csv FILE")
        source = Path(options.csv)
        subjects = find_pairs(source)
    else:
        if not root.is_dir():
            raise UsageError(f"--root folder not found: {root}")
        source = root
        subjects = find_hcp(root) if fmt == "hcp" else find_bids(root)
    if not subjects:
        raise UsageError(f"no {fmt} subjects found under {root}")
    ids = [(s.site, s.subject) for s in subjects]  # a CSV's sites may share ids
    if len(set(ids)) != len(ids):
        site, subject = next(s for s in ids if ids.count(s) > 1)
        where = f" of site {site}" if site else ""
        raise UsageError(f"subject {subject}{where} appears more than once")
    return source, subjects


def import_volumes(
    fmt: str,
    roots: str | Path | list[str | Path],
    out: str | Path,
    options: ImportOptions,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Import NIfTI subjects (hcp, bids or pairs) into a data set at ``out``: from one source
    or several (``roots``: each a site, see :func:`site_roots`; a CSV's ``site`` column), with
    each subject's site recorded and the split stratified by site."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    out = Path(out)
    sources, subjects = _find_all(fmt, roots, options)
    check_output_folder(out, overwrite)
    resolve_scale(options.scale, 1)  # a bad --scale fails before any volume is read
    _check_planes(options)
    default_slice = 120 if fmt == "hcp" else None
    size = options.size or ((304, 256) if fmt == "hcp" else None)
    site_of = {s.participant: s.site for s in subjects}
    participants = list(dict.fromkeys(s.participant for s in subjects))
    by_participant = _split(participants, options, site_of)
    side = {p: split for split, members in by_participant.items() for p in members}
    splits = {
        name: [s.subject for s in subjects if side[s.participant] == name] for name in side.values()
    }
    splits = {name: splits.get(name, []) for name in ("train", "test")}
    # Load everything first (one subject at a time is checked before anything is written).
    loaded = _load_subjects(subjects, side, options, default_slice, progress)
    images = [image for slices in loaded.values() for image in slices["t1w"]]
    size = size or _default_size(tuple(max(image.shape[i] for image in images) for i in (0, 1)))
    _check_size(size)
    with atomic_directory(out, overwrite) as tmp:
        for split, members in splits.items():
            writer = SplitWriter(tmp / split, sum(len(loaded[s]["t1w"]) for s in members), size)
            for sid in members:
                writer.add(sid, _scaled_arrays(loaded[sid], size))
            writer.close()
        _write_meta(
            tmp,
            fmt,
            next(iter(sources.values())),
            size,
            _spacing(subjects[0], options.axis),
            splits,
            {s: len(loaded[s]["t1w"]) for s in loaded},
            options,
            paired=True,
            participants=by_participant,
            extra=_volume_meta(fmt, sources, subjects, splits, by_participant, options)
            | _scale_meta(options, loaded[subjects[0].subject]),
        )
    return out


def _volume_meta(fmt, sources: dict, subjects: list, splits, by_participant, options) -> dict:
    """What ``dataset.json`` records of volume imports: the source files of every subject,
    the sites (subject -> site, participants per site and split), the sources and the
    citation (each BIDS source's, by site, unless --citation)."""
    by_id = {s.subject: s for s in subjects}
    site_of = {s.participant: s.site for s in subjects}
    per_site = {
        site: {
            name: sum(site_of[p] == site for p in members)
            for name, members in by_participant.items()
        }
        for site in dict.fromkeys(site_of.values())
    }
    citation = options.citation
    if not citation and fmt == "bids":
        cited = {site: bids_citation(root) for site, root in sources.items()}
        cited = {site: text for site, text in cited.items() if text}
        one = len(cited) == 1 and len(sources) == 1
        citation = (
            " ".join(text if one else f"{site}: {text}" for site, text in cited.items()) or None
        )
    return {
        "volumes": {
            name: [by_id[sid].source().to_dict() for sid in members]
            for name, members in splits.items()
        },
        "sites": {s.subject: s.site for s in subjects},
        "participants_per_site": per_site,
        "sources": {site: str(Path(root).resolve()) for site, root in sources.items()},
        "citation": citation,
    }


def _load_subjects(subjects, side: dict, options: ImportOptions, default_slice, progress) -> dict:
    """Every subject's slices (:func:`_volume_slices`) by subject id; with ``--planes 3`` the
    training participants' along all three axes, the test participants' axially."""
    loaded = {}
    train_axes = (2, 1, 0) if options.planes == 3 else None
    for files in progress_bar(subjects, desc="reading volumes", unit="subj", disable=not progress):
        axes = train_axes if side[files.participant] == "train" else None
        loaded[files.subject] = _volume_slices(files, options, default_slice, axes)
    return loaded


def _scaled_arrays(slices: dict, size: tuple[int, int]) -> dict:
    out: dict[str, list] = {"t1w": [], "t2w": [], "mask": [], "scale_t1w": [], "scale_t2w": []}
    out["planes"] = slices.get("planes", [2] * len(slices["t1w"]))
    if "slice_index" in slices:
        out["slice_index"] = slices["slice_index"]
    volume = slices.get("divisor", {})  # one divisor per volume, or none (per slice)
    for t1, t2, mask in zip(slices["t1w"], slices["t2w"], slices["mask"]):
        mask = fit_to(mask.astype(bool), size)
        for name, image in (("t1w", t1), ("t2w", t2)):
            scaled, divisor = scale_slice(fit_to(image, size), mask, volume.get(name))
            out[name].append(scaled * mask)
            out[f"scale_{name}"].append(divisor)
        out["mask"].append(mask.astype(np.uint8))
    kinds = {"mask": np.uint8, "planes": np.int8, "slice_index": np.int16}
    return {k: np.asarray(v, dtype=kinds.get(k, np.float32)) for k, v in out.items()}


def _scale_meta(options: ImportOptions, first: dict) -> dict:
    scale = resolve_scale(options.scale, len(first["t1w"]))
    note = VOLUME_INTENSITY_NOTE if scale == "volume" else INTENSITY_NOTE
    return {"intensity_scale": scale, "intensity": note}


def _write_meta(
    folder: Path,
    fmt: str,
    source: Path,
    size,
    spacing,
    splits,
    slices_per_subject,
    options: ImportOptions,
    paired: bool,
    participants: dict[str, list[str]] | None = None,
    extra: dict | None = None,
) -> None:
    """Write ``dataset.json``; ``extra`` adds keys (the volume sources, the citation)."""
    write_json_atomic(
        meta_path(folder),
        {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "source": fmt,
            "source_path": str(Path(source).resolve()),
            "description": f"imported with 'mrtranslate data import --format {fmt}'",
            "contrasts": ["t1w", "t2w"],
            "paired": paired,
            "image_shape": list(size),
            "pixel_spacing_mm": spacing,
            "orientation": PLANE_ORIENTATION[options.axis]
            if options.planes == 1
            else PLANES_ORIENTATION,
            "intensity": INTENSITY_NOTE,
            "seed": options.seed,
            "splits": {
                name: {
                    "participants": len((participants or splits)[name]),
                    "subjects": len(m),
                    "images": sum(slices_per_subject.get(s, 1) for s in m),
                }
                for name, m in splits.items()
            },
            "import": {
                "slices": options.slices,
                "axis": options.axis,
                "planes": options.planes,
                "test_fraction": options.test_fraction,
                "test_subjects_file": options.test_subjects_file,
            },
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "mrtranslate_version": __version__,
            **(extra or {}),
        },
    )
