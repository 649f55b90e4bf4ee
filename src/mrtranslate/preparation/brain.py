"""Offline brain extraction: the MNI152 brain carried onto a T1w by affine registration.

nilearn ships the ICBM 2009a MNI152 T1 template already skull-stripped (no download): its
non-zero voxels are the brain. The template is registered affinely onto the subject's T1w
(Mattes mutual information measured over the template's brain only, so the subject's skull
and neck, which the template lacks, do not pull it), first a similarity (rotation,
translation, one scale) from the images' centres of mass, then a full affine, each over a
pyramid; its brain mask is carried onto the T1w's grid (linear interpolation, > 0.5) and
holes are filled.

The template carries the brain's outline to within the accuracy of an affine fit (a few mm
where a subject's anatomy departs from the template); measured against a reference mask with
:func:`dice`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from mrtranslate.preparation.registration import SEED, from_nibabel, isotropic, sitk

TEMPLATE_MM = 2.0  # the template's grid for registration (the brain's outline, not detail)


@cache
def template():
    """(template T1w brain on a 2 mm grid, its brain mask), SimpleITK images, LPS."""
    from nilearn.datasets import load_mni152_template

    s = sitk()
    image = load_mni152_template(resolution=1)
    data = np.asarray(image.get_fdata(), dtype=np.float32)
    sitk_image = from_nibabel(data, image.affine)
    coarse = isotropic(sitk_image, TEMPLATE_MM)
    mask = s.BinaryFillhole(s.Cast(coarse > 0.05 * float(data.max()), s.sitkUInt8))
    return coarse, mask


@dataclass(frozen=True)
class BrainMask:
    """The brain on the T1w's grid (uint8 SimpleITK image) and the affine template fit
    (template point -> T1w point, LPS mm) with its final metric."""

    mask: object
    transform: object
    metric: float


def extract_brain(t1w, threads: int | None = None) -> BrainMask:
    """The brain mask of ``t1w`` (a SimpleITK image with skull) on its own grid."""
    s = sitk()
    fixed, fixed_mask = template()
    moving = isotropic(s.Cast(t1w, s.sitkFloat32), TEMPLATE_MM)
    similarity = s.Similarity3DTransform(
        s.CenteredTransformInitializer(
            fixed, moving, s.Similarity3DTransform(), s.CenteredTransformInitializerFilter.MOMENTS
        )
    )
    _fit(fixed, fixed_mask, moving, similarity, threads)
    affine = s.AffineTransform(3)
    affine.SetCenter(similarity.GetCenter())
    affine.SetMatrix(similarity.GetMatrix())
    affine.SetTranslation(similarity.GetTranslation())
    metric = _fit(fixed, fixed_mask, moving, affine, threads)
    # fixed (template) -> moving (T1w); the mask goes the other way: T1w grid sampling the
    # template through the inverse
    carried = s.Resample(
        s.Cast(fixed_mask, s.sitkFloat32),
        t1w,
        affine.GetInverse(),
        s.sitkLinear,
        0.0,
        s.sitkFloat32,
    )
    mask = s.BinaryFillhole(s.Cast(carried > 0.5, s.sitkUInt8))
    return BrainMask(mask=mask, transform=affine, metric=metric)


def _fit(fixed, fixed_mask, moving, transform, threads: int | None) -> float:
    """Fit ``transform`` (in place) by Mattes mutual information over the template's brain,
    three levels; returns the final metric."""
    s = sitk()
    method = s.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.3, SEED)
    method.SetMetricFixedMask(fixed_mask)
    method.SetInterpolator(s.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=200, relaxationFactor=0.6
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([4.0, 2.0, 1.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    if threads:
        method.SetNumberOfThreads(threads)
    method.Execute(fixed, moving)
    return float(method.GetMetricValue())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap 2|A∩B| / (|A| + |B|) of two boolean arrays (1 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total
