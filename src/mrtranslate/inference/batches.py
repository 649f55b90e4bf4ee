"""Batched, deterministic translation of image stacks with a trained method, plus timing.

Inputs are (N, C, h, w) float32 stacks in [-1, 1] (the model range; C = the method's 2.5D
context, 1 for single slices); outputs are the centre slice's translation, (N, 1, h, w).
"""

from __future__ import annotations

import time

import torch

from mrtranslate.hardware import autocast
from mrtranslate.methods.base import Method

# Measured on the 2-core CPU (CycleGAN, 256x256, bf16): 45 ms/image at batch 1, 38 at batch 2,
# 42 at 4, 52 at 8 and 64 at 16 (larger batches leave the caches). On the CPU a batch is
# therefore run in micro-batches of 2; on a GPU the whole batch goes at once.
CPU_MICRO_BATCH = 2


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
) -> torch.Tensor:
    """Translate (N, C, h, w) stacks in [-1, 1] (C = ``method.context``); returns the centre
    slice's translation, (N, 1, h, w) float32 in [-1, 1] on the CPU.

    Runs in eval mode under ``inference_mode``, in the networks' memory format, in micro-batches
    of :data:`CPU_MICRO_BATCH` on the CPU and, for ``precision='bf16'``, with bf16 autocast.
    """
    context = method.context
    if images.shape[1] != context:
        raise ValueError(
            f"the model translates stacks of {context} slices, got {images.shape[1]} channels"
        )
    centre = slice(context // 2, context // 2 + 1)
    method.eval()
    outputs = []
    if torch.device(device).type == "cpu":
        batch_size = min(batch_size, CPU_MICRO_BATCH)
    for start in range(0, images.shape[0], batch_size):
        block = images[start : start + batch_size].to(device)
        block = block.contiguous(memory_format=memory_format(method))
        with autocast(device, precision):
            fake = method.translate(block, direction)
        outputs.append(fake[:, centre].float().clamp(-1, 1).cpu().contiguous())
    if not outputs:
        return torch.zeros_like(images[:, centre])
    return torch.cat(outputs)


@torch.inference_mode()
def time_synthesis(
    method: Method,
    images: torch.Tensor,
    direction: str,
    batch_size: int,
    repeats: int = 16,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> float:
    """Median seconds per image when translating ``batch_size`` images per call of
    :func:`translate_stack` (after one warm-up call)."""
    n = max(1, min(batch_size, images.shape[0]))
    block = images[:n]
    times = []
    for i in range(1 + max(1, repeats // n)):
        start = time.perf_counter()
        translate_stack(method, block, direction, n, device=device, precision=precision)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first call is a warm-up
            times.append((time.perf_counter() - start) / n)
    times.sort()
    return times[len(times) // 2]
