"""Batched, deterministic translation of image stacks with a trained method, plus timing."""

from __future__ import annotations

import time

import torch

from mrtranslate.methods.base import Method


def autocast(device: torch.device | str, precision: str):
    """bf16 autocast on the device when ``precision`` is 'bf16', else a disabled context."""
    return torch.autocast(
        torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )


@torch.inference_mode()
def translate_stack(
    method: Method,
    images: torch.Tensor,
    direction: str,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> torch.Tensor:
    """Translate (N, 1, h, w) images in [-1, 1]; returns (N, 1, h, w) float32 in [-1, 1] on CPU.

    Runs in eval mode under ``inference_mode`` with channels-last batches and, for
    ``precision='bf16'``, bf16 autocast.
    """
    method.eval()
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        block = images[start : start + batch_size].to(device)
        block = block.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            fake = method.translate(block, direction)
        outputs.append(fake.float().clamp(-1, 1).cpu().contiguous())
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
    precision: str = "fp32",
) -> float:
    """Median seconds per image when translating ``batch_size`` images at a time (after warm-up)."""
    method.eval()
    n = max(1, min(batch_size, images.shape[0]))
    block = images[:n].to(device).contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(1 + max(1, repeats // n)):
        start = time.perf_counter()
        with autocast(device, precision):
            method.translate(block, direction)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first call is a warm-up
            times.append((time.perf_counter() - start) / n)
    times.sort()
    return times[len(times) // 2]
