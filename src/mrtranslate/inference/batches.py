"""Batched, deterministic translation of image stacks with a trained method, plus timing.

Inputs are (N, C, h, w) float32 stacks in [-1, 1] (the model range; C = the method's 2.5D
context, 1 for single slices); outputs are the centre slice's translation, (N, 1, h, w).

**Tiles.** A model trained on crops (``train.crop``) translates in overlapping tiles of its
training crop, blended with a window that falls off towards each tile's edges: its instance
normalisation then sees the statistics it was trained on (a whole slice holds far more
background than a crop centred on the brain, which shifts every normalised feature; measured in
docs/experiments/2026-12-02-tiles-of-the-training-crop.md).

Given the brain masks, tiles that hold no brain pixel are not translated at all: every pixel
inside the brain is covered only by tiles that hold it, so its blended value is unchanged, and
pixels outside the brain come out as background (-1).
"""

from __future__ import annotations

import time

import torch

from mrtranslate.data.tensors import tile_starts
from mrtranslate.hardware import autocast
from mrtranslate.methods.base import Method

# Measured on the 2-core CPU (CycleGAN, 256x256, bf16): 45 ms/image at batch 1, 38 at batch 2,
# 42 at 4, 52 at 8 and 64 at 16 (larger batches leave the caches). On the CPU a batch is
# therefore run in micro-batches of about 2 such images' pixels (smaller tiles go more at a
# time); on a GPU the whole batch goes at once.
CPU_MICRO_BATCH = 2
CPU_MICRO_BATCH_PIXELS = CPU_MICRO_BATCH * 256 * 256


def cpu_micro_batch(shape: tuple[int, int]) -> int:
    """Images of ``shape`` (h, w) per forward pass on the CPU: about
    :data:`CPU_MICRO_BATCH_PIXELS` pixels, at least 1."""
    return max(1, CPU_MICRO_BATCH_PIXELS // (shape[0] * shape[1]))


def tile_window(shape: tuple[int, int]) -> torch.Tensor:
    """(h, w) float32 blending weights of one tile: 1 in the middle, falling linearly over the
    outer quarter of each side to 1/(side/4) at the edge pixels (never 0, so every pixel of an
    image is covered by a positive weight)."""

    def ramp(n: int) -> torch.Tensor:
        up = torch.arange(1, n + 1, dtype=torch.float32)
        quarter = max(n / 4, 1.0)
        return torch.minimum(up, up.flip(0)).clamp(max=quarter) / quarter

    return ramp(shape[0])[:, None] * ramp(shape[1])[None, :]


def memory_format(module: torch.nn.Module) -> torch.memory_format:
    """channels_last when the module's conv weights are stored that way, else contiguous."""
    for p in module.parameters():
        if p.dim() == 4 and p.shape[1] > 1:
            if p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous():
                return torch.channels_last
            return torch.contiguous_format
    return torch.contiguous_format


@torch.inference_mode()
def translate_stack(
    method: Method,
    images: torch.Tensor,
    direction: str,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    tile: tuple[int, int] | None = None,
    masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Translate (N, C, h, w) stacks in [-1, 1] (C = ``method.context``); returns the centre
    slice's translation, (N, 1, h, w) float32 in [-1, 1] on the CPU.

    Runs in eval mode under ``inference_mode``, in the networks' memory format, in micro-batches
    of :func:`cpu_micro_batch` on the CPU and, for ``precision='bf16'``, with bf16 autocast.
    ``tile`` (th, tw): translate overlapping tiles of that size (a model trained on crops of
    it) and blend them with :func:`tile_window`; None or a tile the image fits in: whole images.
    ``masks`` (N, h, w) bool, with ``tile``: tiles without a brain pixel are skipped (the pixels
    they alone cover come out -1); use it only where the output outside the brain is discarded.
    """
    context = method.context
    if images.shape[1] != context:
        raise ValueError(
            f"the model translates stacks of {context} slices, got {images.shape[1]} channels"
        )
    height, width = images.shape[-2:]
    if tile is not None and (tile[0] < height or tile[1] < width):
        return _translate_tiles(
            method, images, direction, batch_size, device, precision, tile, masks
        )
    centre = slice(context // 2, context // 2 + 1)
    method.eval()
    outputs = []
    if torch.device(device).type == "cpu":
        batch_size = min(batch_size, cpu_micro_batch((height, width)))
    for start in range(0, images.shape[0], batch_size):
        block = images[start : start + batch_size].to(device)
        block = block.contiguous(memory_format=memory_format(method))
        with autocast(device, precision):
            fake = method.translate(block, direction)
        outputs.append(fake[:, centre].float().clamp(-1, 1).cpu().contiguous())
    if not outputs:
        return torch.zeros_like(images[:, centre])
    return torch.cat(outputs)


def tile_corners(shape: tuple[int, int], tile: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners of the overlapping tiles that cover an image of ``shape``."""
    (height, width), (th, tw) = shape, (min(tile[0], shape[0]), min(tile[1], shape[1]))
    return [(y, x) for y in tile_starts(height, th) for x in tile_starts(width, tw)]


def tiles_to_translate(
    masks: torch.Tensor | None, count: int, shape: tuple[int, int], tile: tuple[int, int]
) -> torch.Tensor:
    """(tiles, count) bool: which tile of which image is translated (all without ``masks``;
    with them, the tiles that hold a brain pixel)."""
    corners = tile_corners(shape, tile)
    if masks is None:
        return torch.ones(len(corners), count, dtype=torch.bool)
    th, tw = min(tile[0], shape[0]), min(tile[1], shape[1])
    masks = torch.as_tensor(masks, dtype=torch.bool).reshape(count, *shape)
    return torch.stack([masks[:, y : y + th, x : x + tw].flatten(1).any(1) for y, x in corners])


def _translate_tiles(method, images, direction, batch_size, device, precision, tile, masks):
    """:func:`translate_stack` over overlapping tiles (all tiles of the images in one stack,
    without those that hold no brain pixel when ``masks`` are given), blended: the
    window-weighted mean per pixel."""
    count, height, width = images.shape[0], *images.shape[-2:]
    th, tw = min(tile[0], height), min(tile[1], width)
    corners = tile_corners((height, width), (th, tw))
    keep = tiles_to_translate(masks, count, (height, width), (th, tw))
    tiles = torch.cat(
        [images[keep[i], :, y : y + th, x : x + tw] for i, (y, x) in enumerate(corners)]
    )
    fakes = translate_stack(method, tiles, direction, batch_size * len(corners), device, precision)
    window = tile_window((th, tw))
    total = torch.zeros(count, 1, height, width)
    weight = torch.zeros(count, 1, height, width)
    done = 0
    for i, (y, x) in enumerate(corners):
        chosen = keep[i].nonzero()[:, 0]
        fake = fakes[done : done + chosen.numel()]
        done += chosen.numel()
        total[chosen, :, y : y + th, x : x + tw] += fake * window
        weight[chosen, :, y : y + th, x : x + tw] += window
    covered = weight > 0
    out = torch.where(covered, total / weight.clamp(min=1e-12), torch.full_like(total, -1.0))
    return out.clamp(-1, 1)


@torch.inference_mode()
def time_synthesis(
    method: Method,
    images: torch.Tensor,
    direction: str,
    batch_size: int,
    repeats: int = 16,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    tile: tuple[int, int] | None = None,
) -> float:
    """Median seconds per image when translating ``batch_size`` images per call of
    :func:`translate_stack` (after one warm-up call; ``tile`` as there)."""
    n = max(1, min(batch_size, images.shape[0]))
    block = images[:n]
    times = []
    for i in range(1 + max(1, repeats // n)):
        start = time.perf_counter()
        translate_stack(method, block, direction, n, device=device, precision=precision, tile=tile)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first call is a warm-up
            times.append((time.perf_counter() - start) / n)
    times.sort()
    return times[len(times) // 2]
