"""The built-in multi-contrast brain phantom: HCP-like paired T1w/T2w axial slices.

Anatomy comes from the MNI152 2009a tissue maps that ship inside nilearn (loaded offline).
Every subject gets its own smooth nonlinear deformation and small affine transform, jittered
tissue parameters, a smooth bias field (a receive-coil part shared by both contrasts plus a small
independent part per contrast), Rician noise and a jittered axial level
around MNI z = +12 mm (HCP's axial slice 120, the paper's slice). Both contrasts of a subject
share one anatomy, so the pairs are registered. Optional white-matter lesions are dark on T1w and
bright on T2w.

Images are stored per slice scaled to [0, 1]: each image is divided by the 99.5th percentile of
its intensities inside the brain mask and clipped to [0, 1]; the divisor is kept as ``scale_*``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from mrtranslate.data.mri_signal import TISSUES, tissue_signals

REFERENCE_Z_MM = 12.0  # MNI z of HCP's axial slice 120 (0.7 mm grid), the paper's slice
BRAIN_CENTRE_Y_MM = -17.0  # centre of the MNI brain along the anterior-posterior axis
SLAB_HALF_MM = 30  # template slab kept around the reference level (covers jitter and warps)


@dataclass(frozen=True)
class PhantomSpec:
    """Everything that determines a phantom cohort; the same spec gives identical arrays."""

    subjects: int = 1113
    test_subjects: int = 213
    slices_per_subject: int = 1
    height: int = 304
    width: int = 256
    spacing: float = 0.7
    lesion_fraction: float = 0.0
    seed: int = 0
    slice_gap_mm: float = 2.0
    z_jitter_mm: float = 2.0
    warp_mm: float = 2.5
    snr: tuple[float, float] = (25.0, 45.0)
    bias_std: float = 0.08  # log-amplitude of the smooth receive-coil bias, shared by T1w/T2w
    bias_independent_std: float = 0.02  # log-amplitude of a small per-contrast part

    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line message when the spec is unusable."""
        if self.subjects <= 0:
            raise ValueError(f"--subjects must be positive, got {self.subjects}")
        if self.test_subjects <= 0:
            raise ValueError(f"--test-subjects must be positive, got {self.test_subjects}")
        if self.test_subjects >= self.subjects:
            raise ValueError(
                f"--test-subjects ({self.test_subjects}) must be smaller than --subjects "
                f"({self.subjects}) so that the training split is not empty"
            )
        if self.slices_per_subject <= 0:
            raise ValueError(
                f"--slices-per-subject must be positive, got {self.slices_per_subject}"
            )
        for name, value in (("height", self.height), ("width", self.width)):
            if value < 32 or value % 4:
                raise ValueError(f"image {name} must be >= 32 and divisible by 4, got {value}")
        if not 0.2 <= self.spacing <= 8.0:
            raise ValueError(f"--spacing must be between 0.2 and 8 mm, got {self.spacing}")
        if not 0.0 <= self.lesion_fraction <= 1.0:
            raise ValueError(f"--lesion-fraction must be in [0, 1], got {self.lesion_fraction}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Template:
    """MNI152 tissue fractions on a 1 mm slab around the reference level, float32 (X, Y, Z)."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    origin_mm: tuple[float, float, float]  # world coordinate of voxel (0, 0, 0)


@lru_cache(maxsize=1)
def load_template() -> Template:
    """Load nilearn's packaged MNI152 2009a maps (offline) and cut a slab around z = +12 mm."""
    from nilearn import datasets

    images = {
        "gm": datasets.load_mni152_gm_template(resolution=1),
        "wm": datasets.load_mni152_wm_template(resolution=1),
        "brain": datasets.load_mni152_brain_mask(resolution=1),
    }
    affine = images["brain"].affine
    if not np.allclose(np.abs(np.diag(affine)[:3]), 1.0):
        raise RuntimeError("unexpected MNI template resolution")
    k_ref = int(round((REFERENCE_Z_MM - affine[2, 3]) / affine[2, 2]))
    k0, k1 = k_ref - SLAB_HALF_MM, k_ref + SLAB_HALF_MM + 1
    maps = {
        key: np.asarray(img.dataobj[:, :, k0:k1], dtype=np.float32) for key, img in images.items()
    }
    brain = np.clip(maps["brain"], 0.0, 1.0)
    gm = np.clip(maps["gm"], 0.0, 1.0) * brain
    wm = np.clip(maps["wm"], 0.0, 1.0) * brain
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    origin = (float(affine[0, 3]), float(affine[1, 3]), float(affine[2, 3] + k0 * affine[2, 2]))
    return Template(gm=gm, wm=wm, csf=csf, brain=brain, origin_mm=origin)


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], grid: tuple[int, int], std: float
) -> np.ndarray:
    """A smooth random field: Gaussian control points on a coarse grid, cubic upsampling."""
    coarse = rng.normal(0.0, std, size=grid)
    zoom = (shape[0] / grid[0], shape[1] / grid[1])
    return ndimage.zoom(coarse, zoom, order=3, mode="nearest", grid_mode=True)[
        : shape[0], : shape[1]
    ].astype(np.float32)


def _rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of standard deviation ``sigma``."""
    real = signal + rng.normal(0.0, sigma, size=signal.shape)
    imag = rng.normal(0.0, sigma, size=signal.shape)
    return np.sqrt(real * real + imag * imag).astype(np.float32)


def _lesion_map(rng: np.random.Generator, wm: np.ndarray, spacing: float) -> np.ndarray:
    """1-4 soft round lesions centred in white matter; values in [0, 1], at most the WM fraction."""
    candidates = np.argwhere(wm > 0.9)
    lesion = np.zeros_like(wm)
    if len(candidates) == 0:
        return lesion
    rows, cols = np.mgrid[0 : wm.shape[0], 0 : wm.shape[1]]
    for _ in range(int(rng.integers(1, 5))):
        r, c = candidates[rng.integers(len(candidates))]
        radius_px = rng.uniform(2.0, 6.0) / spacing
        dist2 = ((rows - r) ** 2 + (cols - c) ** 2) / radius_px**2
        lesion = np.maximum(lesion, np.clip(1.5 - dist2, 0.0, 1.0))
    return np.minimum(lesion, wm)


def robust_scale(image: np.ndarray, mask: np.ndarray, percentile: float = 99.5) -> float:
    """The divisor that maps an image to [0, 1]: its ``percentile`` inside the mask (> 0)."""
    values = image[mask > 0]
    if values.size == 0:
        values = image.ravel()
    scale = float(np.percentile(values, percentile))
    return scale if scale > 0 else 1.0


def _subject_grid(rng: np.random.Generator, spec: PhantomSpec):
    """Where each output pixel samples the template (mm): a small affine plus a smooth
    nonlinear warp, shared by both contrasts and all slices; and a smooth z offset field."""
    h, w, sp = spec.height, spec.width, spec.spacing
    # Output grid in subject space (mm): rows run anterior -> posterior, columns left -> right.
    y = BRAIN_CENTRE_Y_MM + (h / 2 - 0.5 - np.arange(h, dtype=np.float32)) * sp
    x = (np.arange(w, dtype=np.float32) - w / 2 + 0.5) * sp
    yy, xx = np.meshgrid(y, x, indexing="ij")
    # Small affine: per-axis scale, in-plane rotation, shift.
    scale = rng.normal(1.0, 0.05, size=2)
    angle = np.deg2rad(rng.normal(0.0, 4.0))
    shift = rng.normal(0.0, 2.0, size=2)
    cos, sin = np.cos(angle), np.sin(angle)
    xt = (cos * xx - sin * (yy - BRAIN_CENTRE_Y_MM)) / scale[0] + shift[0]
    yt = (sin * xx + cos * (yy - BRAIN_CENTRE_Y_MM)) / scale[1] + BRAIN_CENTRE_Y_MM + shift[1]
    xt = xt + _smooth_field(rng, (h, w), (7, 6), spec.warp_mm)
    yt = yt + _smooth_field(rng, (h, w), (7, 6), spec.warp_mm)
    dz = _smooth_field(rng, (h, w), (4, 4), spec.warp_mm / 2)
    return xt, yt, dz


def make_subject(spec: PhantomSpec, index: int) -> dict[str, np.ndarray]:
    """Generate all slices of subject ``index``.

    Returns:
        ``t1w``, ``t2w``: (S, H, W) float32 in [0, 1]; ``mask``: (S, H, W) uint8;
        ``scale_t1w``, ``scale_t2w``: (S,) float32 divisors; ``z_mm``: (S,) float32 MNI levels.
    """
    template = load_template()
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, index]))
    h, w, sp = spec.height, spec.width, spec.spacing
    xt, yt, dz = _subject_grid(rng, spec)
    jitter = {t: rng.normal(1.0, 0.04, size=3) for t in TISSUES}
    signals = tissue_signals(jitter)
    has_lesions = rng.random() < spec.lesion_fraction
    z_centre = REFERENCE_Z_MM + rng.normal(0.0, spec.z_jitter_mm)
    snr = rng.uniform(*spec.snr, size=2)

    out: dict[str, list] = {k: [] for k in ("t1w", "t2w", "mask", "scale_t1w", "scale_t2w", "z_mm")}
    ox, oy, oz = template.origin_mm
    for s in range(spec.slices_per_subject):
        z_mm = z_centre + (s - (spec.slices_per_subject - 1) / 2) * spec.slice_gap_mm
        coords = np.stack([xt - ox, yt - oy, z_mm + dz - oz])  # voxel indices (1 mm grid)
        frac = {
            name: ndimage.map_coordinates(getattr(template, name), coords, order=1, mode="constant")
            for name in ("gm", "wm", "csf", "brain")
        }
        frac["lesion"] = (
            _lesion_map(rng, frac["wm"], sp) if has_lesions else np.zeros_like(frac["wm"])
        )
        frac["wm"] = frac["wm"] - frac["lesion"]
        mask = frac["brain"] > 0.5
        # Both contrasts are received by the same coil: one shared smooth field, plus a small
        # independent part per contrast (transmit and sequence differences).
        coil = _smooth_field(rng, (h, w), (4, 4), spec.bias_std)
        for c, contrast in enumerate(("t1w", "t2w")):
            clean = sum(frac[t] * signals[t][c] for t in TISSUES)
            own = _smooth_field(rng, (h, w), (4, 4), spec.bias_independent_std)
            bias = np.exp(coil + own)
            sigma = signals["wm"][c] / snr[c]
            noisy = _rician(rng, clean * bias, sigma) * mask
            divisor = robust_scale(noisy, mask)
            out[contrast].append(np.clip(noisy / divisor, 0.0, 1.0).astype(np.float32))
            out[f"scale_{contrast}"].append(divisor)
        out["mask"].append(mask.astype(np.uint8))
        out["z_mm"].append(z_mm)
    return {
        key: np.asarray(val, dtype=np.uint8 if key == "mask" else np.float32)
        for key, val in out.items()
    }
