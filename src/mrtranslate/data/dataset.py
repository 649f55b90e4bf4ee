"""The on-disk data-set layout that every command reads and every builder writes.

::

    DATA/
      dataset.json          human-readable metadata (format, contrasts, shape, spacing, splits...)
      train/ test/          one folder per split, memory-mappable .npy arrays (no pickles):
        t1w.npy t2w.npy     (N, H, W) float32 in [0, 1]
        mask.npy            (N, H, W) uint8 brain mask
        subjects.npy        (N,) unicode subject ids (several slices may share one subject)
        scale_t1w.npy ...   (N,) float32: the divisor that mapped each image to [0, 1]
        planes.npy          optional (N,) int8: the RAS+ axis each slice was cut along (2
                            axial, 1 coronal, 0 sagittal); absent: every slice is axial
        slice_index.npy     optional (N,) int16: the index of each slice along that axis in
                            its subject's RAS+ volume (imported volumes; lets whole-volume
                            work reuse what evaluation already translated)

A folder is written with :func:`mrtranslate.fileio.atomic_directory`, so a folder that has a
``dataset.json`` is always complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrtranslate.errors import UsageError

FORMAT = "mrtranslate-dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "test")
META_FILE = "dataset.json"  # the only place that spells the data-set description's name


def meta_path(root: str | Path) -> Path:
    """The data-set description of the data-set folder ``root``."""
    return Path(root) / META_FILE


CONTRASTS = ("t1w", "t2w")
ARRAYS = ("t1w", "t2w", "mask", "subjects", "scale_t1w", "scale_t2w")
OPTIONAL_ARRAYS = ("planes", "slice_index")  # (N,) each, when the builder recorded them


@dataclass(frozen=True)
class Split:
    """The arrays of one split, memory-mapped read-only."""

    t1w: np.ndarray
    t2w: np.ndarray
    mask: np.ndarray
    subjects: np.ndarray
    scale_t1w: np.ndarray
    scale_t2w: np.ndarray
    planes: np.ndarray | None = None  # (N,) axis of each slice; None: all along one axis
    slice_index: np.ndarray | None = None  # (N,) index along that axis; None: not recorded

    def __len__(self) -> int:
        return int(self.t1w.shape[0])

    @property
    def slabs(self) -> np.ndarray:
        """(N,) the slab each image belongs to: its subject, and its plane when the split
        holds slices along several axes (2.5D neighbours never cross a slab)."""
        subjects = np.asarray(self.subjects)
        if self.planes is None:
            return subjects
        planes = np.asarray(self.planes).astype(str)
        return np.char.add(np.char.add(subjects.astype(str), "@"), planes)

    def image(self, contrast: str) -> np.ndarray:
        return {"t1w": self.t1w, "t2w": self.t2w}[contrast]


@dataclass(frozen=True)
class VolumeSource:
    """The NIfTI files one imported subject (a T1w/T2w pair) came from.

    ``mask``: the brain mask file, if one was given; ``lesion``: a lesion or tumour mask (BIDS
    derivatives ``*_label-lesion*`` / ``*_label-tumor*``, or the CSV's ``lesion`` column);
    ``site``: the source it was imported from (a BIDS root, or the CSV's ``site`` column).
    """

    subject: str
    participant: str
    t1w: Path
    t2w: Path
    mask: Path | None = None
    lesion: Path | None = None
    site: str = ""

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict) -> VolumeSource:
        paths = {
            k: Path(data[k]) if data.get(k) else None for k in ("t1w", "t2w", "mask", "lesion")
        }
        return cls(
            subject=str(data["subject"]),
            participant=str(data["participant"]),
            site=str(data.get("site") or ""),
            **paths,
        )


@dataclass(frozen=True)
class Dataset:
    """A data-set folder: its metadata and lazily memory-mapped splits."""

    root: Path
    meta: dict

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.meta["image_shape"])

    def split(self, name: str) -> Split:
        folder = self.root / name
        try:
            arrays = {key: np.load(folder / f"{key}.npy", mmap_mode="r") for key in ARRAYS}
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"data set {self.root} is damaged: cannot read {name} ({exc})"
            ) from exc
        for optional in OPTIONAL_ARRAYS:
            path = folder / f"{optional}.npy"
            if path.is_file():
                try:
                    arrays[optional] = np.load(path, mmap_mode="r")
                except (OSError, ValueError) as exc:
                    raise UsageError(
                        f"data set {self.root} is damaged: cannot read {name} ({exc})"
                    ) from exc
        n = arrays["t1w"].shape[0]
        for key, arr in arrays.items():
            if arr.shape[0] != n:
                raise UsageError(
                    f"data set {self.root} is damaged: {name}/{key}.npy has "
                    f"{arr.shape[0]} entries, expected {n}"
                )
        return Split(**arrays)

    @property
    def planes(self) -> int:
        """The planes the training slices were cut along, as the import recorded it: 3
        (``--planes 3``: axial, coronal and sagittal) or 1 (one axis, whichever it was). The
        one fact the study reads; data sets without the record are 1."""
        recorded = (self.meta.get("import") or {}).get("planes")
        return 3 if recorded == 3 else 1

    @property
    def intensity_scale(self) -> str:
        """``volume`` (one divisor per volume) or ``slice`` (per image; older data sets)."""
        return self.meta.get("intensity_scale", "slice")

    @property
    def citation(self) -> str | None:
        """How to cite the data (recorded at import), or None."""
        return self.meta.get("citation") or None

    @property
    def default_site(self) -> str:
        """The site of subjects the import did not record one for: the source's name."""
        source = self.meta.get("source_path")
        return Path(source).stem if source else "all"

    def site_of(self, subject: str) -> str:
        """The site (source) subject ``subject`` was imported from (``data import`` records
        it per subject; one site for data sets imported from one source)."""
        return (self.meta.get("sites") or {}).get(str(subject)) or self.default_site

    def sites(self) -> list[str]:
        """Every site of the data set, in the order the import met them."""
        recorded = list(dict.fromkeys((self.meta.get("sites") or {}).values()))
        return recorded or [self.default_site]

    def participants_per_site(self) -> dict[str, dict[str, int]]:
        """Participants per site and split (``data info``)."""
        per_site = self.meta.get("participants_per_site")
        if per_site:
            return per_site
        splits = self.meta.get("splits") or {}
        counts = {k: v.get("participants", v.get("subjects")) for k, v in splits.items()}
        return {self.default_site: counts}

    def has_volumes(self) -> bool:
        """Whether the import recorded the NIfTI volumes of each subject."""
        return isinstance(self.meta.get("volumes"), dict)

    def volume_sources(self, split: str) -> list[VolumeSource]:
        """The source volumes of a split's subjects; a usage error when none were recorded."""
        if not self.has_volumes():
            raise UsageError(
                f"{self.root} records no source volumes (it was built from single slices or "
                "imported by an older mrtranslate); import the NIfTI volumes again with "
                "'mrtranslate data import' to evaluate whole volumes"
            )
        try:
            return [VolumeSource.from_dict(d) for d in self.meta["volumes"].get(split, [])]
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{meta_path(self.root)}: damaged 'volumes' entry ({exc})") from None

    def info(self) -> dict:
        """The summary printed by ``mrtranslate data info``."""
        meta = self.meta
        return {
            "path": str(self.root),
            "source": meta.get("source"),
            "contrasts": meta["contrasts"],
            "paired": meta["paired"],
            "image_shape": meta["image_shape"],
            "pixel_spacing_mm": meta["pixel_spacing_mm"],
            "orientation": meta.get("orientation"),
            "splits": meta["splits"],
            "seed": meta.get("seed"),
            "intensity": meta.get("intensity"),
            "intensity_scale": self.intensity_scale,
            "volumes": {k: len(v) for k, v in meta["volumes"].items()}
            if self.has_volumes()
            else None,
            "sites": self.participants_per_site(),
            "citation": self.citation,
        }


def open_dataset(path: str | Path) -> Dataset:
    """Open a data-set folder, with a one-line :class:`UsageError` when it is not one."""
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"data folder not found: {root}")
    description = meta_path(root)
    if not description.is_file():
        raise UsageError(
            f"{root} is not an mrtranslate data set (no {META_FILE}); "
            "build one with 'mrtranslate data phantom --out DIR'"
        )
    try:
        meta = json.loads(description.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {description}: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise UsageError(f"{description} is not an mrtranslate data-set description")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise UsageError(
            f"{root} was written by a newer mrtranslate (format version "
            f"{meta.get('version')}); upgrade mrtranslate"
        )
    return Dataset(root=root, meta=meta)


def write_split(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write one split's arrays as ``.npy`` files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for key in ARRAYS:
        np.save(folder / f"{key}.npy", arrays[key], allow_pickle=False)
    if arrays.get("planes") is not None:
        np.save(folder / "planes.npy", np.asarray(arrays["planes"], dtype=np.int8))
    if arrays.get("slice_index") is not None:
        np.save(folder / "slice_index.npy", np.asarray(arrays["slice_index"], dtype=np.int16))


class SplitWriter:
    """Streams images of one split into preallocated ``.npy`` memory maps (bounded memory)."""

    def __init__(self, folder: Path, count: int, shape: tuple[int, int]):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.count = count
        self.pos = 0
        self.maps = {
            c: np.lib.format.open_memmap(
                folder / f"{c}.npy", mode="w+", dtype=np.float32, shape=(count, *shape)
            )
            for c in CONTRASTS
        }
        self.maps["mask"] = np.lib.format.open_memmap(
            folder / "mask.npy", mode="w+", dtype=np.uint8, shape=(count, *shape)
        )
        self.small: dict[str, list] = {"subjects": [], "scale_t1w": [], "scale_t2w": []}
        self.planes: list[int] = []
        self.slice_index: list[int] = []

    def add(self, subject: str, arrays: dict[str, np.ndarray]) -> None:
        n = arrays["t1w"].shape[0]
        end = self.pos + n
        for key in ("t1w", "t2w", "mask"):
            self.maps[key][self.pos : end] = arrays[key]
        self.small["subjects"].extend([subject] * n)
        self.small["scale_t1w"].extend(arrays["scale_t1w"].tolist())
        self.small["scale_t2w"].extend(arrays["scale_t2w"].tolist())
        self.planes.extend(arrays["planes"].tolist() if "planes" in arrays else [2] * n)
        self.slice_index.extend(arrays["slice_index"].tolist() if "slice_index" in arrays else [])
        self.pos = end

    def close(self) -> None:
        if self.pos != self.count:
            raise RuntimeError(f"split has {self.pos} images, expected {self.count}")
        for arr in self.maps.values():
            arr.flush()
        self.maps.clear()
        np.save(self.folder / "subjects.npy", np.asarray(self.small["subjects"], dtype=str))
        for key in ("scale_t1w", "scale_t2w"):
            np.save(self.folder / f"{key}.npy", np.asarray(self.small[key], dtype=np.float32))
        if any(axis != 2 for axis in self.planes):  # slices along several axes
            np.save(self.folder / "planes.npy", np.asarray(self.planes, dtype=np.int8))
        if len(self.slice_index) == self.count:  # every subject's slices were indexed
            np.save(self.folder / "slice_index.npy", np.asarray(self.slice_index, dtype=np.int16))


def split_subjects(subjects: Iterable[str], test_count: int, seed: int) -> dict[str, list[str]]:
    """Random subject-level split: ``test_count`` subjects to test, the rest to train."""
    subjects = list(subjects)
    order = np.random.default_rng(np.random.SeedSequence([seed, 7919])).permutation(len(subjects))
    test = sorted(subjects[i] for i in order[:test_count])
    test_set = set(test)
    return {"train": [s for s in subjects if s not in test_set], "test": test}
