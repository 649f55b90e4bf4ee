"""``mrtranslate perceptual build``: pick, render and anonymise the images of a study.

Real images come from the test split, synthetic ones from the given (evaluated) runs: half T1w
and half T2w each, the synthetic ones spread evenly over the models, each image from a different
test subject while the split allows it. Every image gets the same treatment, so that only the
pixels can tell real from synthetic: real images are resized to the runs' working resolution
with the filter used in evaluation, then all images are upscaled to the same display size with
the same filter, set to zero outside the subject's brain mask, windowed the same way ([0, 1]
data range to 0-255 grey) and saved as
*uncompressed* PNG (deflate level 0, "stored" blocks) with no metadata, so that every file has
exactly the same byte length: compressed sizes would differ between smooth synthetic and noisy
real images and tell them apart. Each image gets an id of 128 bits from :mod:`secrets`
(independent of ``--seed``, which only chooses the images), and the images are rendered and
stored in a random order. The truth is stored only in ``study.sqlite``.
"""

from __future__ import annotations

import io
import random
import secrets
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mrtranslate.data.dataset import open_dataset
from mrtranslate.data.tensors import load_images, load_masks, to_data_range
from mrtranslate.directions import DIRECTIONS, Direction
from mrtranslate.errors import UsageError
from mrtranslate.fileio import atomic_directory, write_json_atomic
from mrtranslate.perceptual import store
from mrtranslate.runs import load_evaluation, load_synthetic

DISPLAY_HEIGHT = 320


def encode_png(image: Image.Image) -> bytes:
    """Uncompressed 8-bit grey PNG without metadata: the byte length depends only on the size."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=0, optimize=False)
    return buf.getvalue()


def render(image01: np.ndarray, height: int = DISPLAY_HEIGHT) -> Image.Image:
    """A (h, w) image in [0, 1] upscaled (bilinear) to ``height`` rows, as 8-bit grey."""
    h, w = image01.shape
    size = (height, int(round(w * height / h)))
    big = F.interpolate(
        torch.from_numpy(np.array(image01, dtype=np.float32))[None, None],
        size=size,
        mode="bilinear",
        align_corners=False,
    )[0, 0].numpy()
    return Image.fromarray(np.round(np.clip(big, 0, 1) * 255).astype(np.uint8), mode="L")


def _load_runs(runs: list[Path]) -> list[dict]:
    loaded = []
    for run in runs:
        summary = load_evaluation(run)
        synthetic = {d: load_synthetic(run, d, summary) for d in DIRECTIONS}
        loaded.append(
            {"dir": run, "name": summary.display_name, "summary": summary, "synthetic": synthetic}
        )
    shapes = {tuple(r["summary"].evaluation_shape) for r in loaded}
    if len(shapes) != 1:
        raise UsageError("the runs were evaluated at different image sizes")
    return loaded


def _split_counts(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _select(run_info: list[dict], n_test: int, n_real: int, n_synthetic: int, seed: int):
    """(truth, contrast, run, test index) per image: balanced, each from another subject while
    the test split allows it, chosen by ``seed``; returned in a cryptographically random order."""
    order = list(range(n_test))
    random.Random(seed).shuffle(order)
    picks = iter(order * (1 + (n_real + n_synthetic) // max(1, n_test)))
    entries = []
    for contrast in ("t1w", "t2w"):
        entries += [("real", contrast, None, next(picks)) for _ in range(n_real // 2)]
        for r, count in zip(run_info, _split_counts(n_synthetic // 2, len(run_info))):
            entries += [("synthetic", contrast, r, next(picks)) for _ in range(count)]
    secrets.SystemRandom().shuffle(entries)  # nothing on disk follows the truth-sorted order
    return entries


def _write_images(folder: Path, entries, split, shape: tuple[int, int]) -> list[dict]:
    """Render every image identically under a secret id; returns the database rows."""
    real = {c: to_data_range(load_images(split, c, shape))[:, 0].numpy() for c in ("t1w", "t2w")}
    # Zero outside the brain for every image: a synthetic image's faint background would
    # otherwise tell it apart from the skull-stripped real ones by pixel values alone.
    masks = load_masks(split, shape)[:, 0].numpy()
    images = []
    for truth, contrast, run, index in entries:
        if truth == "real":
            pixels = real[contrast][index]
        else:
            pixels = run["synthetic"][Direction.producing(contrast)][index]
        image_id = secrets.token_hex(16)
        pixels = np.asarray(pixels, dtype=np.float32) * masks[index]
        (folder / f"{image_id}.png").write_bytes(encode_png(render(pixels)))
        images.append(
            {
                "id": image_id,
                "truth": truth,
                "contrast": contrast,
                "model": run["name"] if run else None,
                "subject": str(split.subjects[index]),
            }
        )
    return images


def build_study(
    data: str | Path,
    runs: list[str | Path],
    out: str | Path,
    n_real: int = 96,
    n_synthetic: int = 72,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Build a study folder: ``images/<id>.png``, ``study.sqlite`` and ``study.json``."""
    if n_real < 2 or n_real % 2 or n_synthetic < 2 or n_synthetic % 2:
        raise UsageError("--real and --synthetic must be even numbers >= 2 (half T1w, half T2w)")
    dataset = open_dataset(data)
    run_info = _load_runs([Path(r) for r in runs])
    shape = tuple(run_info[0]["summary"].evaluation_shape)
    split = dataset.split("test")
    for r in run_info:
        if r["summary"].test_images != len(split):
            raise UsageError(
                f"{r['dir']} was evaluated on {r['summary'].test_images} test "
                f"images, but {data} has {len(split)}"
            )
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"study folder {out} exists and is not empty (use --overwrite)")
    entries = _select(run_info, len(split), n_real, n_synthetic, seed)
    models = [r["name"] for r in run_info]
    with atomic_directory(out, overwrite) as tmp:
        (tmp / "images").mkdir()
        images = _write_images(tmp / "images", entries, split, shape)
        meta = {
            "admin_token": secrets.token_hex(16),
            "seed": seed,
            "data": str(Path(data).resolve()),
            "runs": [str(r["dir"].resolve()) for r in run_info],
            "models": models,
        }
        store.create(tmp, images, meta)
        write_json_atomic(
            tmp / "study.json",
            {
                "images": len(images),
                "real": n_real,
                "synthetic": n_synthetic,
                "models": models,
                "seed": seed,
                "display": f"{DISPLAY_HEIGHT} px high, 8-bit grey uncompressed PNG (one byte "
                "length for all), data range [0, 1] -> 0-255",
            },
        )
    return out
