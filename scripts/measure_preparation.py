"""Measure raw-scan preparation against the published co-registration of open-ms-raw.

For every session of ``ROOT`` (default ../shared/realdata/open-ms-raw): the rigid T2w->T1w
registration's mean displacement from the reference transform inside the reference brain mask
(mm), the same for scanner coordinates alone (no registration), the brain mask's Dice against
the reference mask, and the seconds each took; with ``--run RUN``, the raw T1w translated by
that run (``translate --raw``) against the reference-registered T2w inside the reference brain
mask on the raw T1w grid (Pearson r). One JSON line per session.

    python scripts/measure_preparation.py [--root ROOT] [--run RUN] [--out FOLDER]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from mrtranslate.preparation.brain import dice, extract_brain
from mrtranslate.preparation.prepare import n4
from mrtranslate.preparation.registration import mean_displacement_mm, register_rigid, sitk


def reference_t1_to_t2(anat: Path, stem: str):
    """The published chain as one fixed (T1w) -> moving (T2w) transform:
    x_T2w = from-T2w_to-FLAIR(inv(from-T1w_to-FLAIR)(x))."""
    s = sitk()
    t1_to_flair = s.ReadTransform(str(anat / f"{stem}_from-T1w_to-FLAIR_xfm.txt"))
    t2_to_flair = s.ReadTransform(str(anat / f"{stem}_from-T2w_to-FLAIR_xfm.txt"))
    chain = s.CompositeTransform(3)
    chain.AddTransform(t2_to_flair)  # applied last
    chain.AddTransform(t1_to_flair.GetInverse())  # applied first
    return chain


def translated_r(run_dir: str, t1_path: Path, reference_t2: Path, mask: np.ndarray, out: Path):
    """Pearson r of the raw T1w translated by ``run_dir`` and the reference T2w in ``mask``
    (SimpleITK (z, y, x) order), and the seconds the translation took."""
    import nibabel as nib

    from mrtranslate.preparation.raw_translate import translate_raw
    from mrtranslate.runs import load_run

    start = time.perf_counter()
    output = out / t1_path.name.replace("_T1w", "_desc-synthetic_T2w")
    translate_raw(load_run(run_dir), "t1-to-t2", t1_path, output, overwrite=True, progress=False)
    seconds = time.perf_counter() - start
    synthetic = np.asarray(nib.load(str(output)).dataobj, np.float64).transpose(2, 1, 0)
    real = np.asarray(nib.load(str(reference_t2)).dataobj, np.float64).transpose(2, 1, 0)
    inside = mask & (real > 0)  # the reference is 0 outside the T2w's field of view
    # the reference carries the scanner's bias field (the synthetic image was made from an N4-
    # corrected input); r against the N4-corrected reference too
    s = sitk()
    corrected = n4(s.ReadImage(str(reference_t2), s.sitkFloat32))
    real_n4 = s.GetArrayFromImage(corrected).astype(np.float64)
    r = float(np.corrcoef(synthetic[inside], real[inside])[0, 1])
    r_n4 = float(np.corrcoef(synthetic[inside], real_n4[inside])[0, 1])
    return r, r_n4, seconds


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="../shared/realdata/open-ms-raw")
    parser.add_argument("--run", help="a run to translate each raw T1w with")
    parser.add_argument("--out", default="/tmp/measure-preparation")
    args = parser.parse_args()
    s = sitk()
    root, out = Path(args.root), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for t1_path in sorted(root.glob("sub-*/ses-*/anat/*_T1w.nii.gz")):
        stem = t1_path.name.removesuffix("_T1w.nii.gz")
        sub, ses = stem.split("_")
        anat = root / "derivatives" / "reference" / sub / ses / "anat"
        t1 = s.ReadImage(str(t1_path), s.sitkFloat32)
        t2 = s.ReadImage(str(t1_path.with_name(f"{stem}_T2w.nii.gz")), s.sitkFloat32)
        mask_image = s.ReadImage(str(anat / f"{stem}_space-T1w_desc-brain_mask.nii.gz"))
        mask = s.GetArrayFromImage(mask_image) > 0
        reference = reference_t1_to_t2(anat, stem)
        start = time.perf_counter()
        result = register_rigid(t1, t2)
        register_s = time.perf_counter() - start
        start = time.perf_counter()
        brain = extract_brain(t1)
        brain_s = time.perf_counter() - start
        row = {
            "session": stem,
            "registration_mm": mean_displacement_mm(result.transform, reference, t1, mask, 7),
            "scanner_mm": mean_displacement_mm(s.Transform(), reference, t1, mask, 7),
            "metric": result.metric,
            "register_seconds": register_s,
            "rotation_degrees": result.rotation_degrees,
            "translation_mm": result.translation_mm,
            "dice": dice(s.GetArrayFromImage(brain.mask) > 0, mask),
            "brain_seconds": brain_s,
            "brain_ml": float(np.sum(s.GetArrayFromImage(brain.mask) > 0))
            * float(np.prod(t1.GetSpacing()))
            / 1000,
            "reference_ml": float(mask.sum()) * float(np.prod(t1.GetSpacing())) / 1000,
        }
        if args.run:
            reference_t2 = anat / f"{stem}_space-T1w_desc-reference_T2w.nii.gz"
            row["translated_r"], row["translated_r_n4_reference"], row["translate_seconds"] = (
                translated_r(args.run, t1_path, reference_t2, mask, out)
            )
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
