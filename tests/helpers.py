"""Helpers shared by the tests (imported as ``from helpers import ...``)."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from mrtranslate.cli import main

SPACING = 3.0


def usage_error(capsys, args: list[str]) -> str:
    """Run the CLI and check it fails as a usage error: exit 2, one line on stderr, no traceback."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("mrtranslate: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def trained_and_evaluated(models: tuple[str, ...], data, root) -> list:
    """Train each model with the tiny profile into ``root/<model>`` and evaluate it."""
    from mrtranslate.training.run import train_run

    runs = []
    for model in models:
        train_run(model, data, root / model, profile="tiny", progress=False)
        assert main(["evaluate", "--run", str(root / model), "--quiet"]) == 0
        runs.append(root / model)
    return runs


def phantom_volumes(index: int, slices: int = 6, size: int = 64):
    """A subject's T1w/T2w as RAS+ volumes (X, Y, Z) built from phantom slices, and the affine."""
    from mrtranslate.data.phantom import PhantomSpec, make_subject

    spec = PhantomSpec(
        subjects=20,
        test_subjects=2,
        slices_per_subject=slices,
        height=size,
        width=size,
        spacing=SPACING,
        seed=4,
    )
    subject = make_subject(spec, index)
    vols = {}
    for key in ("t1w", "t2w", "mask"):
        stack = subject[key].astype(np.float32)  # (S, H, W), rows anterior->posterior
        vols[key] = np.stack([np.flipud(img).T for img in stack], axis=2) * 1000.0
    affine = np.diag([SPACING, SPACING, 2.0, 1.0])
    return vols, affine


def save(path, data, affine):
    """Write a float32 NIfTI (creating folders); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), str(path))
    return path
