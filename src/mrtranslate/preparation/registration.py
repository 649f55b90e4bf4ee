"""Rigid registration of a T2w onto a T1w by mutual information (SimpleITK).

Why SimpleITK: a well-kept wrapper of ITK with wheels for every platform, nothing downloaded at
run time, the registration framework (Mattes mutual information, multi-resolution pyramids,
physical-unit smoothing), N4 bias correction, resampling and the ITK transform files that
published co-registrations (and ANTs, fMRIPrep) use, in one library.

Both images stay in ITK's physical space (LPS millimetres). The transform returned maps points
of the **fixed** image (T1w) to the **moving** image (T2w): it is what a resampler needs to bring
the T2w onto the T1w's grid (the same sense as a BIDS ``from-T2w_to-T1w`` transform).

Method: the T1w is resampled to an isotropic grid (clinical T1w slices are 3-4 mm thick; an
isotropic fixed grid lets one pyramid shrink every axis alike), the rigid (Euler) transform
starts from the scanner coordinates (identity: sessions are roughly aligned by the scanner;
centring by geometry would trust two different fields of view), and Mattes mutual information
(50 bins, 20% of the voxels inside the T1w's head, sampled with a fixed seed) is minimised with
regular-step gradient descent over three levels (shrink 4, 2, 1; smoothing 2, 1, 0 mm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mrtranslate.errors import UsageError

SEED = 20260412  # the metric's voxel sample: one registration, one answer
ISOTROPIC_MM = 1.0
SHRINK = (4, 2, 1)
SMOOTH_MM = (2.0, 1.0, 0.0)
SAMPLING = 0.2
BINS = 50


def sitk():
    """SimpleITK, imported when first needed (a one-line error when it is missing)."""
    try:
        import SimpleITK
    except ImportError:  # pragma: no cover - a dependency of the package
        raise UsageError(
            "preparing raw scans needs SimpleITK: pip install 'simpleitk>=2.3'"
        ) from None
    return SimpleITK


def from_nibabel(data: np.ndarray, affine: np.ndarray):
    """A SimpleITK image (float32) of an array indexed like its nibabel ``affine`` (RAS mm);
    ITK works in LPS, so the affine's first two rows change sign."""
    s = sitk()
    image = s.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetDirection(tuple((lps / spacing).ravel().tolist()))
    image.SetOrigin(tuple((np.diag([-1.0, -1.0, 1.0]) @ affine[:3, 3]).tolist()))
    return image


def to_nibabel(image) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`from_nibabel`: the voxel array (x, y, z) and its RAS affine."""
    s = sitk()
    data = np.transpose(s.GetArrayFromImage(image), (2, 1, 0))
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    flip = np.diag([-1.0, -1.0, 1.0])
    affine[:3, :3] = flip @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = flip @ np.asarray(image.GetOrigin())
    return data, affine


@dataclass(frozen=True)
class Registration:
    """A rigid registration's result.

    Attributes:
        transform: the SimpleITK Euler3DTransform, fixed (T1w) point -> moving (T2w) point, LPS mm.
        metric: the final Mattes mutual information (negative; lower is better).
        iterations: optimiser iterations at the last level.
        stop: the optimiser's reason to stop.
    """

    transform: object
    metric: float
    iterations: int
    stop: str

    @property
    def rotation_degrees(self) -> float:
        """The rotation's angle in degrees (axis-angle)."""
        matrix = np.asarray(self.transform.GetMatrix()).reshape(3, 3)
        return math.degrees(math.acos(max(-1.0, min(1.0, (np.trace(matrix) - 1) / 2))))

    @property
    def translation_mm(self) -> float:
        """Length of the translation in mm (about the transform's centre)."""
        return float(np.linalg.norm(self.transform.GetTranslation()))


def isotropic(image, spacing: float = ISOTROPIC_MM):
    """``image`` resampled (linear) onto a grid of the same field of view and direction with
    ``spacing`` mm voxels on every axis."""
    s = sitk()
    old_size, old_spacing = np.array(image.GetSize()), np.array(image.GetSpacing())
    size = [max(1, int(round(n))) for n in old_size * old_spacing / spacing]
    # keep the field of view's first corner (not the first voxel's centre) in place
    corner_shift = (np.array([spacing] * 3) - old_spacing) / 2
    origin = (
        np.array(image.GetOrigin()) + np.asarray(image.GetDirection()).reshape(3, 3) @ corner_shift
    )
    return s.Resample(
        image,
        size,
        s.Transform(),
        s.sitkLinear,
        tuple(origin),
        (spacing,) * 3,
        image.GetDirection(),
        0.0,
        s.sitkFloat32,
    )


def head_mask(image):
    """The head (not the air around it): Otsu threshold, the largest connected component,
    holes filled. uint8 image on ``image``'s grid."""
    s = sitk()
    foreground = s.OtsuThreshold(image, 0, 1, 128)
    largest = s.RelabelComponent(s.ConnectedComponent(foreground), sortByObjectSize=True) == 1
    return s.BinaryFillhole(s.Cast(largest, s.sitkUInt8))


def register_rigid(fixed, moving, threads: int | None = None) -> Registration:
    """Register ``moving`` (T2w) rigidly onto ``fixed`` (T1w), both SimpleITK images in
    physical space; see the module docstring for the method."""
    s = sitk()
    fixed_iso = isotropic(s.Cast(fixed, s.sitkFloat32))
    moving = s.Cast(moving, s.sitkFloat32)
    transform = s.Euler3DTransform()
    centre = fixed_iso.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2 for n in fixed_iso.GetSize()]
    )
    transform.SetCenter(centre)
    method = s.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING, SEED)
    method.SetMetricFixedMask(head_mask(fixed_iso))
    method.SetInterpolator(s.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=1e-4,
        numberOfIterations=300,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK))
    method.SetSmoothingSigmasPerLevel(list(SMOOTH_MM))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    if threads:
        method.SetNumberOfThreads(threads)
    method.Execute(fixed_iso, moving)
    return Registration(
        transform=transform,
        metric=float(method.GetMetricValue()),
        iterations=int(method.GetOptimizerIteration()),
        stop=method.GetOptimizerStopConditionDescription(),
    )


def mean_displacement_mm(transform_a, transform_b, image, mask: np.ndarray, step: int = 1) -> float:
    """Mean distance (mm) between where two fixed->moving transforms send the centres of the
    voxels of ``image`` inside ``mask`` (a numpy array in SimpleITK's (z, y, x) order); every
    ``step``-th voxel."""
    zyx = np.argwhere(mask)[::step]
    points = _physical_points(image, zyx[:, ::-1])
    a = np.array([transform_a.TransformPoint(tuple(p)) for p in points])
    b = np.array([transform_b.TransformPoint(tuple(p)) for p in points])
    return float(np.linalg.norm(a - b, axis=1).mean())


def _physical_points(image, ijk: np.ndarray) -> np.ndarray:
    """Physical (LPS mm) points of voxel indices ``ijk`` (n, 3) of ``image``."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing())
    return np.asarray(image.GetOrigin()) + (ijk * spacing) @ direction.T


def normalised_mutual_information(a: np.ndarray, b: np.ndarray, bins: int = 64) -> float:
    """NMI = (H(A) + H(B)) / H(A, B) of two samples of voxel values (1: independent; 2: one
    determines the other), each binned over its own 0.5th-99.5th percentile range."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    ranges = [np.percentile(v, [0.5, 99.5]) for v in (a, b)]
    if any(hi <= lo for lo, hi in ranges):
        return 1.0
    joint, _, _ = np.histogram2d(a, b, bins=bins, range=ranges)
    joint /= max(joint.sum(), 1.0)

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    h_joint = entropy(joint)
    return (entropy(joint.sum(1)) + entropy(joint.sum(0))) / h_joint if h_joint > 0 else 1.0


PEAK_SHIFT_MM = 4.0  # the registration's result must beat itself moved this far along each axis


def shifted(transform, offset_mm) -> object:
    """``transform`` followed by a translation of the moving point by ``offset_mm`` (LPS)."""
    s = sitk()
    step = s.TranslationTransform(3, tuple(float(v) for v in offset_mm))
    composite = s.CompositeTransform(3)
    composite.AddTransform(step)  # applied last
    composite.AddTransform(transform)  # applied first
    return composite


def registration_score(fixed, moving, transform, grid_mm: float = 2.0) -> dict[str, float]:
    """How well ``transform`` (fixed point -> moving point) aligns ``moving`` with ``fixed``,
    measured inside the fixed image's head on an isotropic ``grid_mm`` grid:

    - ``nmi``: normalised mutual information of the pair;
    - ``nmi_scanner``: the same with scanner coordinates alone (no transform);
    - ``peak_margin``: ``nmi`` minus the best NMI of the result moved by
      :data:`PEAK_SHIFT_MM` along each axis, both ways (> 0: the result is a peak of shared
      information; < 0: a nearby position shares more, so the optimiser stopped short or went
      astray)."""
    s = sitk()
    grid = isotropic(s.Cast(fixed, s.sitkFloat32), grid_mm)
    head = s.GetArrayViewFromImage(head_mask(grid)) > 0
    fixed_values = s.GetArrayViewFromImage(grid)[head]

    def nmi(candidate) -> float:
        sampled = s.Resample(moving, grid, candidate, s.sitkLinear, 0.0, s.sitkFloat32)
        return normalised_mutual_information(fixed_values, s.GetArrayViewFromImage(sampled)[head])

    at_result = nmi(transform)
    around = [
        nmi(shifted(transform, sign * PEAK_SHIFT_MM * np.eye(3)[axis]))
        for axis in range(3)
        for sign in (-1.0, 1.0)
    ]
    return {
        "nmi": at_result,
        "nmi_scanner": nmi(s.Transform()),
        "peak_margin": at_result - max(around),
    }
