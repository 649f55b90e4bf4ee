"""Batched, deterministic translation of image stacks with a trained method, plus timing."""

from __future__ import annotations

import time

import torch

from mrtranslate.methods.base import Method


@torch.inference_mode()
def translate_stack(
    method: Method,
    images: torch.Tensor,
    direction: str,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Translate (N, 1, h, w) images in [-1, 1]; returns (N, 1, h, w) float32 in [-1, 1] on CPU."""
    method.eval()
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        block = images[start : start + batch_size].to(device)
        outputs.append(method.translate(block, direction).float().clamp(-1, 1).cpu())
    if not outputs:
        return torch.zeros_like(images)
    return torch.cat(outputs)


@torch.inference_mode()
def time_synthesis(
    method: Method,
    images: torch.Tensor,
    direction: str,
    batch_size: int,
    repeats: int = 16,
    device: torch.device | str = "cpu",
) -> float:
    """Median seconds per image when translating ``batch_size`` images at a time (after warm-up)."""
    method.eval()
    n = max(1, min(batch_size, images.shape[0]))
    block = images[:n].to(device)
    method.translate(block, direction)  # warm-up
    times = []
    for _ in range(max(1, repeats // n)):
        start = time.perf_counter()
        method.translate(block, direction)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / n)
    times.sort()
    return times[len(times) // 2]
