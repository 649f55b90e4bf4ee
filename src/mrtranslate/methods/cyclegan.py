"""CycleGAN (Zhu et al. 2017) and CycleGAN_s (Welander et al. 2018) for T1w <-> T2w.

Name map: G = ``g_t1_to_t2``, F = ``g_t2_to_t1``, D_Y = ``d_t2``, D_X = ``d_t1``.

Generator objective (Zhu et al. 2017, eq. 1-3, with the least-squares GAN loss)::

    L_G = (D_t2(G(t1)) - 1)^2 + (D_t1(F(t2)) - 1)^2
          + lambda_cyc * (|F(G(t1)) - t1|_1 + |G(F(t2)) - t2|_1)
          + lambda_id  * (|G(t2) - t2|_1 + |F(t1) - t1|_1)          (optional, off by default)
          + lambda_sup * (|G(t1) - t2|_1 + |F(t2) - t1|_1)          (CycleGAN_s, paired batches;
                                                      in the brain mask only: loss.brain_only)

Discriminator objective: L_D = 1/2 [(D(real) - 1)^2 + D(pooled fake)^2] per domain, with a pool of
past fakes. Weights: lambda_cyc = 10, lambda_sup = 10, lambda_id = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mrtranslate.config import LossSettings, NetSettings
from mrtranslate.losses import l1, lsgan_loss
from mrtranslate.methods.base import (
    Batch,
    DiscriminatorPair,
    ImagePool,
    Logs,
    Method,
    TranslatorPair,
    score_real_and_fake,
)
from mrtranslate.methods.registry import ModelSpec
from mrtranslate.nets import PatchDiscriminator, ResnetGenerator
from mrtranslate.nets.conv import UPSAMPLINGS


@dataclass
class ResnetGeneratorNet(NetSettings):
    """The ResNet generator's settings (CycleGAN, CycleGAN_s and Generators_s; paper values)."""

    width: int = 32  # filters of the first layer
    blocks: int = 9  # residual blocks
    # up-sampling: "transpose" (the paper) or "resize" (no checkerboard; nets/conv.py)
    upsample: str = "transpose"
    # U-Net-like additive skips from encoder to decoder (off in the paper; nets/cyclegan.py)
    skips: bool = False

    positive = ("width",)
    choices = {"upsample": UPSAMPLINGS}
    renamed = {"gen_width": "width", "gen_blocks": "blocks", "gen_upsample": "upsample"}


@dataclass
class CycleGANNet(ResnetGeneratorNet):
    """CycleGAN's networks: two ResNet generators and two PatchGANs (paper values)."""

    disc_width: int = 64  # PatchGAN filters of the first layer

    positive = ("width", "disc_width")


@dataclass
class CycleGANLoss(LossSettings):
    """CycleGAN's loss weights (Zhu et al. 2017; Welander et al. 2018 for the supervised term)."""

    cycle: float = 10.0  # lambda_cyc: L1 cycle loss, each direction
    supervised: float = 10.0  # lambda_sup: L1 to the paired ground truth (CycleGAN_s only)
    identity: float = 0.0  # lambda_id: optional identity loss (off in the paper)
    pool_size: int = 50  # past fakes kept for the discriminators


class CycleGAN(TranslatorPair, DiscriminatorPair, Method):
    """CycleGAN; with ``supervised_weight > 0`` and paired batches it is CycleGAN_s.

    Args:
        gen_width, gen_blocks: generator width and residual blocks (paper: 32, 9).
        disc_width: PatchGAN width (paper: 64).
        cycle_weight, identity_weight, supervised_weight: loss weights (10, 0, 0 or 10).
        pool_size: past fakes kept per domain (50).
        image_shape: (H, W) of training images, for the pool's buffers.
        context: slices per image stack (channels of every network's input and output).
        brain_only: the supervised L1 inside the batch's brain mask only (``batch["mask"]``).
        gen_upsample: generator up-sampling, "transpose" (the paper) or "resize" (no grid).
        gen_skips: additive encoder-to-decoder skips in the generators (off in the paper).
    """

    def __init__(
        self,
        *,
        gen_width: int,
        gen_blocks: int,
        disc_width: int,
        cycle_weight: float,
        identity_weight: float,
        supervised_weight: float,
        pool_size: int,
        image_shape: tuple[int, int],
        name: str,
        context: int = 1,
        brain_only: bool = False,
        gen_upsample: str = "transpose",
        gen_skips: bool = False,
    ):
        super().__init__()
        self.name = name
        self.context = context
        self.brain_only = brain_only
        self.paired = supervised_weight > 0
        self.cycle_weight = cycle_weight
        self.identity_weight = identity_weight
        self.supervised_weight = supervised_weight
        gen = {
            "in_channels": context,
            "out_channels": context,
            "width": gen_width,
            "blocks": gen_blocks,
            "upsample": gen_upsample,
            "skips": gen_skips,
        }
        self.g_t1_to_t2 = ResnetGenerator(**gen)
        self.g_t2_to_t1 = ResnetGenerator(**gen)
        self.d_t1 = PatchDiscriminator(in_channels=context, width=disc_width)
        self.d_t2 = PatchDiscriminator(in_channels=context, width=disc_width)
        self.pool_t1 = ImagePool(pool_size, image_shape, context)
        self.pool_t2 = ImagePool(pool_size, image_shape, context)

    @classmethod
    def from_config(cls, *, spec, net, loss, image_shape) -> CycleGAN:
        return cls(
            gen_width=net.width,
            gen_blocks=net.blocks,
            gen_upsample=net.upsample,
            gen_skips=net.skips,
            disc_width=net.disc_width,
            cycle_weight=loss.cycle,
            identity_weight=loss.identity,
            supervised_weight=loss.supervised if spec.paired else 0.0,
            pool_size=loss.pool_size,
            image_shape=image_shape,
            name=spec.name,
            context=net.context,
            brain_only=loss.brain_only,
        )

    def generator_step(self, batch: Batch) -> tuple[torch.Tensor, Logs, Batch]:
        real_t1, real_t2 = batch["t1w"], batch["t2w"]
        fake_t2 = self.g_t1_to_t2(real_t1)
        fake_t1 = self.g_t2_to_t1(real_t2)
        rec_t1 = self.g_t2_to_t1(fake_t2)
        rec_t2 = self.g_t1_to_t2(fake_t1)
        logs = {
            "g/adv_t2": lsgan_loss(self.d_t2(fake_t2), True),
            "g/adv_t1": lsgan_loss(self.d_t1(fake_t1), True),
            "g/cycle_t1": l1(rec_t1, real_t1),
            "g/cycle_t2": l1(rec_t2, real_t2),
        }
        loss = logs["g/adv_t1"] + logs["g/adv_t2"]
        loss = loss + self.cycle_weight * (logs["g/cycle_t1"] + logs["g/cycle_t2"])
        if self.identity_weight > 0:
            logs["g/identity_t2"] = l1(self.g_t1_to_t2(real_t2), real_t2)
            logs["g/identity_t1"] = l1(self.g_t2_to_t1(real_t1), real_t1)
            loss = loss + self.identity_weight * (logs["g/identity_t1"] + logs["g/identity_t2"])
        if self.supervised_weight > 0:
            mask = batch.get("mask") if self.brain_only else None
            logs["g/sup_t2"] = l1(fake_t2, real_t2, mask)
            logs["g/sup_t1"] = l1(fake_t1, real_t1, mask)
            loss = loss + self.supervised_weight * (logs["g/sup_t1"] + logs["g/sup_t2"])
        logs = {k: v.detach() for k, v in logs.items()}
        logs["g/total"] = loss.detach()
        return loss, logs, {"t1w": fake_t1.detach(), "t2w": fake_t2.detach()}

    def discriminator_step(self, batch: Batch, fakes: Batch) -> tuple[torch.Tensor, Logs]:
        losses = {}
        for key, disc, pool in (("t1w", self.d_t1, self.pool_t1), ("t2w", self.d_t2, self.pool_t2)):
            real_scores, fake_scores = score_real_and_fake(disc, batch[key], pool.query(fakes[key]))
            losses[key] = 0.5 * (lsgan_loss(real_scores, True) + lsgan_loss(fake_scores, False))
        loss_t1, loss_t2 = losses["t1w"], losses["t2w"]
        loss = loss_t1 + loss_t2
        return loss, {"d/t1": loss_t1.detach(), "d/t2": loss_t2.detach()}

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        return self.translator(direction)(images)


_QUICK = {
    "net.width": 16,
    "net.blocks": 6,
    "net.disc_width": 32,
    "net.upsample": "resize",  # no checkerboard (nets/conv.py: upsample2x)
    "train.decay_epochs": 3,
    "train.lr": 4e-4,
}
_TINY = {"net.width": 8, "net.blocks": 2, "net.disc_width": 8, "loss.pool_size": 4}
_SETTINGS = {"net_settings": CycleGANNet, "loss_settings": CycleGANLoss}
SPEC = ModelSpec(
    name="cyclegan",
    display_name="CycleGAN",
    paired=False,
    method=CycleGAN,
    summary="2 ResNet generators, 2 PatchGANs; LSGAN + cycle loss (unpaired)",
    **_SETTINGS,
    quick=_QUICK,
    tiny=_TINY,
)
SPEC_S = ModelSpec(
    name="cyclegan_s",
    display_name="CycleGAN_s",
    paired=True,
    method=CycleGAN,
    summary="CycleGAN plus an L1 term to the paired ground truth",
    **_SETTINGS,
    quick=_QUICK,
    tiny=_TINY,
)
