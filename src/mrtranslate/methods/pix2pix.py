"""pix2pix (Isola et al., CVPR 2017) in both directions: the field's standard paired baseline.

Name map: G = ``g_t1_to_t2`` (U-Net, :mod:`mrtranslate.nets.unet`), F = ``g_t2_to_t1``; the
conditional 70x70 PatchGANs see the input beside the output: ``d_t2`` judges (T1w, T2w) pairs,
``d_t1`` (T2w, T1w) pairs (channels concatenated, input first).

Generator objective (Isola et al. 2017, eq. 1-4, the non-saturating cross-entropy GAN loss)::

    L_G = BCE(D_t2(t1, G(t1)), 1) + BCE(D_t1(t2, F(t2)), 1)
          + lambda_L1 * (|G(t1) - t2|_1 + |F(t2) - t1|_1)      (lambda_L1 = 100; in the brain
                                                              mask only with loss.brain_only)

Discriminator objective, divided by 2 as in the paper (D learns at half the rate of G)::

    L_D = 1/2 [BCE(D_t2(t1, t2), 1) + BCE(D_t2(t1, G(t1)), 0)] + the same for D_t1

No pool of past fakes (the paper uses none). Paired: every batch holds the same participants'
T1w and T2w.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrtranslate.config import LossSettings, NetSettings
from mrtranslate.losses import bce_gan_loss, l1
from mrtranslate.methods.base import (
    Batch,
    DiscriminatorPair,
    Logs,
    Method,
    TranslatorPair,
    score_real_and_fake,
)
from mrtranslate.methods.registry import ModelSpec
from mrtranslate.nets import PatchDiscriminator
from mrtranslate.nets.unet import UNetGenerator


@dataclass
class Pix2PixNet(NetSettings):
    """pix2pix's networks: two U-Nets and two conditional 70x70 PatchGANs (paper values)."""

    width: int = 64  # U-Net filters of the first layer
    depth: int = 8  # U-Net down-samplings (8: a 1x1 bottleneck at 256x256)
    dropout: float = 0.5  # on the three innermost decoder layers, in training only
    disc_width: int = 64  # PatchGAN filters of the first layer

    positive = ("width", "depth", "disc_width")

    def validate(self, section: str = "net") -> None:
        super().validate(section)
        if self.depth < 2:
            raise ValueError(f"{section}.depth must be at least 2, got {self.depth}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"{section}.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class Pix2PixLoss(LossSettings):
    """pix2pix's loss weight (Isola et al. 2017)."""

    l1: float = 100.0  # lambda_L1: L1 to the paired ground truth, each direction


class Pix2Pix(TranslatorPair, DiscriminatorPair, Method):
    """Two conditional GANs, one per direction, each with an L1 term to the ground truth.

    Args:
        gen_width, gen_depth, dropout: U-Net first-layer filters, down-samplings, dropout.
        disc_width: PatchGAN first-layer filters.
        l1_weight: lambda_L1 (100).
        name: the model name.
        context: slices per image stack (channels of the generators; the discriminators see
            twice as many: input and output).
        brain_only: the L1 inside the batch's brain mask only (``batch["mask"]``).
    """

    paired = True

    def __init__(
        self,
        *,
        gen_width: int,
        gen_depth: int,
        dropout: float,
        disc_width: int,
        l1_weight: float,
        name: str,
        context: int = 1,
        brain_only: bool = False,
    ):
        super().__init__()
        self.name = name
        self.context = context
        self.brain_only = brain_only
        self.l1_weight = l1_weight
        gen = {
            "in_channels": context,
            "out_channels": context,
            "width": gen_width,
            "depth": gen_depth,
            "dropout": dropout,
        }
        self.g_t1_to_t2 = UNetGenerator(**gen)
        self.g_t2_to_t1 = UNetGenerator(**gen)
        self.d_t1 = PatchDiscriminator(in_channels=2 * context, width=disc_width)
        self.d_t2 = PatchDiscriminator(in_channels=2 * context, width=disc_width)

    @classmethod
    def from_config(cls, *, spec, net, loss, image_shape) -> Pix2Pix:
        return cls(
            gen_width=net.width,
            gen_depth=net.depth,
            dropout=net.dropout,
            disc_width=net.disc_width,
            l1_weight=loss.l1,
            name=spec.name,
            context=net.context,
            brain_only=loss.brain_only,
        )

    def generator_step(self, batch: Batch) -> tuple[torch.Tensor, Logs, Batch]:
        real_t1, real_t2 = batch["t1w"], batch["t2w"]
        fake_t2 = self.g_t1_to_t2(real_t1)
        fake_t1 = self.g_t2_to_t1(real_t2)
        mask = batch.get("mask") if self.brain_only else None
        logs = {
            "g/adv_t2": bce_gan_loss([self.d_t2(_pair(real_t1, fake_t2))], True),
            "g/adv_t1": bce_gan_loss([self.d_t1(_pair(real_t2, fake_t1))], True),
            "g/l1_t2": l1(fake_t2, real_t2, mask),
            "g/l1_t1": l1(fake_t1, real_t1, mask),
        }
        loss = logs["g/adv_t1"] + logs["g/adv_t2"]
        loss = loss + self.l1_weight * (logs["g/l1_t1"] + logs["g/l1_t2"])
        logs = {k: v.detach() for k, v in logs.items()}
        logs["g/total"] = loss.detach()
        return loss, logs, {"t1w": fake_t1.detach(), "t2w": fake_t2.detach()}

    def discriminator_step(self, batch: Batch, fakes: Batch) -> tuple[torch.Tensor, Logs]:
        losses = {}
        judged = (("t2w", "t1w", self.d_t2), ("t1w", "t2w", self.d_t1))
        for target, source, disc in judged:
            condition = batch[source]
            real_scores, fake_scores = score_real_and_fake(
                disc, _pair(condition, batch[target]), _pair(condition, fakes[target])
            )
            real, fake = bce_gan_loss([real_scores], True), bce_gan_loss([fake_scores], False)
            losses[target] = 0.5 * (real + fake)
        loss = losses["t1w"] + losses["t2w"]
        return loss, {"d/t1": losses["t1w"].detach(), "d/t2": losses["t2w"].detach()}

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        return self.translator(direction)(images)


def _pair(condition: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """What a conditional discriminator sees: (B, 2C, H, W), the input's C channels first."""
    return torch.cat([condition, output.to(condition.dtype)], dim=1)


SPEC = ModelSpec(
    name="pix2pix",
    display_name="pix2pix",
    paired=True,
    method=Pix2Pix,
    summary="2 U-Nets, 2 conditional PatchGANs; GAN + 100 x L1 to the ground truth (paired)",
    net_settings=Pix2PixNet,
    loss_settings=Pix2PixLoss,
    # Adam 2e-4, beta1 0.5 (the paper); a constant rate, as in the paper's training
    defaults={"train.decay_epochs": 0},
    quick={
        "net.width": 16,
        "net.depth": 5,
        "net.disc_width": 32,
        "train.decay_epochs": 3,  # the rate falls to 0 over the last half, as for the others
    },
    tiny={"net.width": 8, "net.depth": 3, "net.disc_width": 8},
    # not in the study's default list until measured to earn its share of a budget
    in_study=False,
)
