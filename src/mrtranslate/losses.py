"""Loss functions over tensors (no state). Equations follow the cited papers.

- Least-squares GAN (Mao et al. 2017), used by CycleGAN: the discriminator minimises
  1/2 E[(D(y) - 1)^2] + 1/2 E[D(G(x))^2]; the generator minimises E[(D(G(x)) - 1)^2].
- Binary cross-entropy GAN (Goodfellow et al. 2014), used by UNIT, on logits for stability.
- L1 terms: cycle consistency ||F(G(x)) - x||_1 (Zhu et al. 2017, eq. 2), reconstruction and
  paired supervision, all as means over pixels and batch.
- UNIT's latent KL term: KL(N(mu, I) || N(0, I)) = 1/2 mean(mu^2) up to a constant; as in the
  paper code we use mean(mu^2) with its weight (Liu et al. 2017, eq. 3-4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lsgan_loss(scores: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Mean of (scores - target)^2 with target 1 for real, 0 for fake."""
    target = 1.0 if target_is_real else 0.0
    return torch.mean((scores.float() - target) ** 2)


def bce_gan_loss(logits: list[torch.Tensor], target_is_real: bool) -> torch.Tensor:
    """Sum over discriminator scales of the mean binary cross-entropy with logits."""
    total = logits[0].new_zeros((), dtype=torch.float32)
    for scale in logits:
        scale = scale.float()
        target = torch.ones_like(scale) if target_is_real else torch.zeros_like(scale)
        total = total + F.binary_cross_entropy_with_logits(scale, target)
    return total


def l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference (in float32 even under autocast); with ``mask`` ((B, 1, H, W),
    1 inside the brain, 0 outside) the mean over the masked pixels of every channel only."""
    difference = torch.abs(a.float() - b.float())
    if mask is None:
        return torch.mean(difference)
    weights = mask.float().expand_as(difference)
    return (difference * weights).sum() / weights.sum().clamp_min(1.0)


def latent_kl(mu: torch.Tensor) -> torch.Tensor:
    """UNIT's prior term: mean(mu^2), which is 2 KL(N(mu, I) || N(0, I)) per element."""
    return torch.mean(mu.float() ** 2)
