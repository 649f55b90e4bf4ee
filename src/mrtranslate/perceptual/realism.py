"""The automated observer: can a small CNN tell a model's synthetic images from real ones?

Per model and contrast, real test images and the model's synthetic images of that contrast are
split into ``folds`` groups by subject (a subject's real and synthetic images always fall in the
same fold, so the classifier cannot match pairs); a small CNN is trained on the other folds and
tested on the held-out one. The pooled held-out accuracy is reported with a Wilson 95% CI: 50%
means the images are indistinguishable to this observer, 100% means always told apart.

Smoothness: the fraction of spectral power above 0.25 cycles/pixel inside the image, averaged
over images, divided by the same for the real images (1 = as detailed as real, < 1 = smoother).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mrtranslate.data.dataset import open_dataset
from mrtranslate.data.tensors import load_images, to_data_range
from mrtranslate.directions import Direction
from mrtranslate.errors import UsageError
from mrtranslate.fileio import write_json_atomic
from mrtranslate.hardware import resolve_device
from mrtranslate.perceptual.analysis import wilson
from mrtranslate.runs import load_evaluation, load_synthetic

SOURCE = {c: Direction.producing(c) for c in ("t1w", "t2w")}


class Observer(nn.Module):
    """Tiny real-vs-synthetic classifier: 3 stride-2 convs, global average pool, linear logit."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width * 2, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width * 2, width * 4, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width * 4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


def high_frequency_fraction(images: np.ndarray, cutoff: float = 0.25) -> float:
    """Mean over (N, h, w) images of the spectral power fraction above ``cutoff`` cycles/pixel."""
    h, w = images.shape[-2:]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    high = np.sqrt(fx**2 + fy**2) > cutoff
    centred = images - images.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.fft2(centred)) ** 2
    total = power.sum(axis=(-2, -1))
    return float(np.mean(power[:, high].sum(axis=-1) / np.maximum(total, 1e-12)))


def _fit_and_score(
    x_train, y_train, x_test, y_test, epochs: int, seed: int, device: torch.device
) -> int:
    torch.manual_seed(seed)
    model = Observer().to(device)
    x_train, y_train = x_train.to(device), y_train.to(device)
    x_test, y_test = x_test.to(device), y_test.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            opt.zero_grad()
            loss_fn(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        predicted = (model(x_test) > 0).float()
    return int((predicted == y_test).sum())


def observer_accuracy(
    real: torch.Tensor,
    synthetic: torch.Tensor,
    folds: int = 5,
    epochs: int = 8,
    seed: int = 0,
    device: torch.device | str = "cpu",
    subjects: list[str] | None = None,
) -> dict:
    """Cross-validated accuracy of telling (N, 1, h, w) real from synthetic (same subjects).

    Folds are by subject (``subjects[i]`` of image i; each image its own subject when not given):
    all images of a subject, real and synthetic, are held out together.
    """
    n = real.shape[0]
    subjects = [str(s) for s in subjects] if subjects is not None else [str(i) for i in range(n)]
    unique = sorted(set(subjects))
    fold_of_subject = dict(
        zip(unique, np.random.default_rng(seed).permutation(len(unique)) % folds, strict=True)
    )
    fold_of = np.array([fold_of_subject[s] for s in subjects])
    correct = total = 0
    for k in range(folds):
        train_idx = torch.from_numpy(np.flatnonzero(fold_of != k))
        test_idx = torch.from_numpy(np.flatnonzero(fold_of == k))
        if len(test_idx) == 0:
            continue
        x_train = torch.cat([real[train_idx], synthetic[train_idx]])
        y_train = torch.cat([torch.zeros(len(train_idx)), torch.ones(len(train_idx))])
        x_test = torch.cat([real[test_idx], synthetic[test_idx]])
        y_test = torch.cat([torch.zeros(len(test_idx)), torch.ones(len(test_idx))])
        correct += _fit_and_score(
            x_train, y_train, x_test, y_test, epochs, seed + k, torch.device(device)
        )
        total += len(y_test)
    return {
        "accuracy": correct / total,
        "accuracy_ci95": wilson(correct, total),
        "held_out_images": total,
        "folds": folds,
    }


def run_realism(
    data: str | Path,
    runs: list[str | Path],
    out: str | Path | None = None,
    folds: int = 5,
    epochs: int = 8,
    seed: int = 0,
    progress: bool = True,
    device: str = "auto",
) -> dict:
    """Observer accuracy and smoothness per model and contrast; writes ``realism.json``.

    ``device``: where the observers train (``auto``: a GPU when available, else the CPU).
    """
    device = resolve_device(device)
    if folds < 2:
        raise UsageError(f"--folds must be at least 2, got {folds}")
    dataset = open_dataset(data)
    split = dataset.split("test")
    result: dict = {"method": __doc__.strip().splitlines()[0], "models": {}}
    real_cache: dict = {}
    for run in map(Path, runs):
        summary = load_evaluation(run)
        shape = tuple(summary.evaluation_shape)
        if summary.test_images != len(split):
            raise UsageError(f"{run} was evaluated on other test data than {data}")
        name = summary.display_name
        result["models"][name] = {}
        for contrast, direction in SOURCE.items():
            if progress:
                print(
                    f"[realism] {name} {contrast}: {folds}-fold observer",
                    file=sys.stderr,
                    flush=True,
                )
            key = (contrast, shape)
            if key not in real_cache:
                real_cache[key] = load_images(split, contrast, shape)
            real = real_cache[key]
            synthetic01 = np.asarray(load_synthetic(run, direction, summary), dtype=np.float32)
            synthetic = torch.from_numpy(synthetic01[:, None] * 2 - 1).float()
            real01 = to_data_range(real)[:, 0].numpy()
            entry = observer_accuracy(
                real, synthetic, folds, epochs, seed, device, subjects=split.subjects.tolist()
            )
            entry["high_frequency_ratio"] = high_frequency_fraction(
                synthetic01
            ) / high_frequency_fraction(real01)
            result["models"][name][contrast] = entry
    if out is not None:
        write_json_atomic(Path(out) / "realism.json", result)
    return result
