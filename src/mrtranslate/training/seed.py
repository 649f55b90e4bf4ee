"""One seed controls initialisation, data order and every random draw during training."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A distinct, reproducible seed for training step ``step`` on process ``rank``."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def epoch_order(
    seed: int, epoch: int, count: int, paired: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample order of one epoch: a permutation per contrast (the same one when paired).

    Unlike the seed code (sampling with replacement), every image is used once per epoch; for
    unpaired models the T1w and T2w orders are independent, so a step sees different subjects.
    """
    gen = torch.Generator().manual_seed(step_seed(seed, epoch, 1_000_003))
    order_t1 = torch.randperm(count, generator=gen)
    order_t2 = order_t1 if paired else torch.randperm(count, generator=gen)
    return order_t1, order_t2
