"""UNIT (Liu, Breuel & Kautz 2017) for T1w <-> T2w, with the loss weights of Welander et al.

Shared-latent model: x -> E_domain -> shared block -> mu; z = mu + n with n ~ N(0, I) during
training (z = mu at inference); h = shared block(z); image = Decoder_domain(h).

Generator objective (Liu et al. 2017, eq. 2-6; weights lambda_0..4 = 10, 0.1, 100, 0.1, 100)::

    L_G = lambda_0 (BCE(D_t2(t1->t2), 1) + BCE(D_t1(t2->t1), 1))
        + lambda_1 (KL(mu_t1) + KL(mu_t2))                      KL(mu) := mean(mu^2)
        + lambda_2 (|t1->t1 - t1|_1 + |t2->t2 - t2|_1)            within-domain reconstruction
        + lambda_3 (KL(mu of E_t2(t1->t2)) + KL(mu of E_t1(t2->t1)))
        + lambda_4 (|t1->t2->t1 - t1|_1 + |t2->t1->t2 - t2|_1)    cycle reconstruction

Discriminator objective: lambda_0 (BCE(D(real), 1) + BCE(D(fake), 0)) per domain, summed over
scales; fakes come from the generator step of the same iteration (no pool, as in the seed code).
See :mod:`mrtranslate.nets.unit` for the corrections of the seed code's defects.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mrtranslate.config import LossSettings, NetSettings
from mrtranslate.directions import Direction
from mrtranslate.losses import bce_gan_loss, l1, latent_kl
from mrtranslate.methods.base import Batch, Logs, Method, check_direction, score_real_and_fake
from mrtranslate.methods.registry import ModelSpec
from mrtranslate.nets.conv import UPSAMPLINGS
from mrtranslate.nets.unit import (
    UnitDecoder,
    UnitEncoder,
    UnitMultiScaleDiscriminator,
    UnitResBlock,
    init_normal,
)


@dataclass
class UnitNet(NetSettings):
    """UNIT's networks (the paper's values)."""

    width: int = 64  # encoder filters of the first layer (latent: 4x this)
    blocks: int = 3  # residual blocks per encoder and per decoder
    scales: int = 3  # discriminator scales
    disc_width: int = 64  # discriminator filters of the first layer
    dropout: float = 0.5  # dropout in the residual blocks, training only
    # decoder up-sampling: "transpose" (the paper: 3x3 stride-2 transposed convs, which leave a
    # checkerboard grid) or "resize" (nearest-neighbour x2, then a 3x3 conv)
    upsample: str = "transpose"

    positive = ("width", "scales", "disc_width")
    choices = {"upsample": UPSAMPLINGS}
    renamed = {
        "unit_width": "width",
        "unit_blocks": "blocks",
        "unit_scales": "scales",
        "unit_disc_width": "disc_width",
        "unit_dropout": "dropout",
        "unit_upsample": "upsample",
    }

    def validate(self, section: str = "net") -> None:
        super().validate(section)
        if not self.dropout < 1:
            raise ValueError(f"{section}.dropout must be below 1, got {self.dropout}")


@dataclass
class UnitLoss(LossSettings):
    """UNIT's loss weights lambda_0..4 (Liu et al. 2017, as in Welander et al. 2018)."""

    adv: float = 10.0  # adversarial (BCE), generator and discriminator
    kl: float = 0.1  # latent prior term of the encoded real images
    rec: float = 100.0  # within-domain reconstruction (L1)
    cycle: float = 100.0  # cycle reconstruction (L1)
    kl_cycle: float = 0.1  # latent prior term of the re-encoded translations

    renamed = {
        "unit_adv": "adv",
        "unit_kl": "kl",
        "unit_rec": "rec",
        "unit_cycle": "cycle",
        "unit_kl_cycle": "kl_cycle",
    }


class Unit(Method):
    """UNIT with per-domain encoders/decoders, shared latent blocks and multi-scale Ds.

    Args:
        width, blocks, dropout: encoder/decoder width (64), residual blocks (3), dropout (0).
        disc_width, scales: discriminator width (64) and scales (3).
        upsample: decoder up-sampling, "transpose" (the paper) or "resize" (no grid).
        adv_weight, kl_weight, rec_weight, kl_cycle_weight, cycle_weight: 10, 0.1, 100, 0.1, 100.
    """

    def __init__(
        self,
        *,
        width: int,
        blocks: int,
        dropout: float,
        disc_width: int,
        scales: int,
        adv_weight: float,
        kl_weight: float,
        rec_weight: float,
        kl_cycle_weight: float,
        cycle_weight: float,
        upsample: str = "transpose",
        context: int = 1,
    ):
        super().__init__()
        self.name = "unit"
        self.context = context
        self.weights = {
            "adv": adv_weight,
            "kl": kl_weight,
            "rec": rec_weight,
            "kl_cycle": kl_cycle_weight,
            "cycle": cycle_weight,
        }
        enc = {"in_channels": context, "width": width, "blocks": blocks, "dropout": dropout}
        self.enc_t1 = UnitEncoder(**enc)
        self.enc_t2 = UnitEncoder(**enc)
        self.shared_enc = UnitResBlock(width * 4, dropout)
        self.shared_dec = UnitResBlock(width * 4, dropout)
        dec = {"out_channels": context, "width": width, "blocks": blocks, "dropout": dropout}
        self.dec_t1 = UnitDecoder(**dec, upsample=upsample)
        self.dec_t2 = UnitDecoder(**dec, upsample=upsample)
        disc = {"in_channels": context, "width": disc_width, "scales": scales}
        self.d_t1 = UnitMultiScaleDiscriminator(**disc)
        self.d_t2 = UnitMultiScaleDiscriminator(**disc)
        init_normal(self)

    @classmethod
    def from_config(cls, *, spec, net, loss, image_shape) -> Unit:
        return cls(
            width=net.width,
            blocks=net.blocks,
            dropout=net.dropout,
            disc_width=net.disc_width,
            scales=net.scales,
            upsample=net.upsample,
            adv_weight=loss.adv,
            kl_weight=loss.kl,
            rec_weight=loss.rec,
            kl_cycle_weight=loss.kl_cycle,
            cycle_weight=loss.cycle,
            context=net.context,
        )

    def generators(self) -> dict[str, nn.Module]:
        return {
            "enc_t1": self.enc_t1,
            "enc_t2": self.enc_t2,
            "shared_enc": self.shared_enc,
            "shared_dec": self.shared_dec,
            "dec_t1": self.dec_t1,
            "dec_t2": self.dec_t2,
        }

    def discriminators(self) -> dict[str, nn.Module]:
        return {"d_t1": self.d_t1, "d_t2": self.d_t2}

    def generator_parameters(self):
        return [p for m in self.generators().values() for p in m.parameters()]

    def discriminator_parameters(self):
        return [*self.d_t1.parameters(), *self.d_t2.parameters()]

    def sample(self, mu: torch.Tensor) -> torch.Tensor:
        """z = mu + N(0, I) noise in training mode, z = mu in eval mode (deterministic)."""
        return mu + torch.randn_like(mu) if self.training else mu

    def encode(self, images: torch.Tensor, encoder: nn.Module) -> torch.Tensor:
        """Image stacks (B, C, H, W) -> latent means mu (B, 4*width, H/4, W/4)."""
        return self.shared_enc(encoder(images))

    def decode(self, z: torch.Tensor, decoder: nn.Module) -> torch.Tensor:
        return decoder(self.shared_dec(z))

    def generator_step(self, batch: Batch) -> tuple[torch.Tensor, Logs, Batch]:
        real_t1, real_t2 = batch["t1w"], batch["t2w"]
        sizes = [real_t1.shape[0], real_t2.shape[0]]
        # Every layer treats the images of a batch independently, so the shared blocks and each
        # decoder run once on both domains together (fewer, larger calls; the same function).
        mu = self.shared_enc(torch.cat([self.enc_t1(real_t1), self.enc_t2(real_t2)]))
        h = self.shared_dec(self.sample(mu))  # [h_t1; h_t2]
        rec_t1, fake_t1 = self.dec_t1(h).split(sizes)
        fake_t2, rec_t2 = self.dec_t2(h).split(sizes)
        # Cycle: t1 -> t2 -> latent -> t1 and t2 -> t1 -> latent -> t2.
        mu_cyc = self.shared_enc(torch.cat([self.enc_t2(fake_t2), self.enc_t1(fake_t1)]))
        h_cyc_t1, h_cyc_t2 = self.shared_dec(self.sample(mu_cyc)).split(sizes)
        cyc_t1, cyc_t2 = self.dec_t1(h_cyc_t1), self.dec_t2(h_cyc_t2)
        mu_t1, mu_t2 = mu.split(sizes)
        mu_cyc_t1, mu_cyc_t2 = mu_cyc.split(sizes)
        logs = {
            "g/adv_t2": bce_gan_loss(self.d_t2(fake_t2), True),
            "g/adv_t1": bce_gan_loss(self.d_t1(fake_t1), True),
            "g/kl": latent_kl(mu_t1) + latent_kl(mu_t2),
            "g/rec_t1": l1(rec_t1, real_t1),
            "g/rec_t2": l1(rec_t2, real_t2),
            "g/kl_cycle": latent_kl(mu_cyc_t1) + latent_kl(mu_cyc_t2),
            "g/cycle_t1": l1(cyc_t1, real_t1),
            "g/cycle_t2": l1(cyc_t2, real_t2),
        }
        w = self.weights
        loss = (
            w["adv"] * (logs["g/adv_t1"] + logs["g/adv_t2"])
            + w["kl"] * logs["g/kl"]
            + w["rec"] * (logs["g/rec_t1"] + logs["g/rec_t2"])
            + w["kl_cycle"] * logs["g/kl_cycle"]
            + w["cycle"] * (logs["g/cycle_t1"] + logs["g/cycle_t2"])
        )
        logs = {k: v.detach() for k, v in logs.items()}
        logs["g/total"] = loss.detach()
        return loss, logs, {"t1w": fake_t1.detach(), "t2w": fake_t2.detach()}

    def discriminator_step(self, batch: Batch, fakes: Batch) -> tuple[torch.Tensor, Logs]:
        losses = {}
        for key, disc in (("t1w", self.d_t1), ("t2w", self.d_t2)):
            real_scores, fake_scores = score_real_and_fake(disc, batch[key], fakes[key])
            losses[key] = bce_gan_loss(real_scores, True) + bce_gan_loss(fake_scores, False)
        loss_t1, loss_t2 = losses["t1w"], losses["t2w"]
        loss = self.weights["adv"] * (loss_t1 + loss_t2)
        return loss, {"d/t1": loss_t1.detach(), "d/t2": loss_t2.detach()}

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        check_direction(direction)
        if direction == Direction.T1_TO_T2:
            return self.decode(self.encode(images, self.enc_t1), self.dec_t2)
        return self.decode(self.encode(images, self.enc_t2), self.dec_t1)


SPEC = ModelSpec(
    name="unit",
    display_name="UNIT",
    paired=False,
    method=Unit,
    summary="shared-latent VAE-GAN: 2 encoders, shared blocks, 2 decoders, multi-scale Ds",
    net_settings=UnitNet,
    loss_settings=UnitLoss,
    # Adam 1e-4 with weight decay, 100 epochs without decay (Keras l2(5e-5) => gradient 1e-4 w)
    defaults={
        "train.lr": 1e-4,
        "train.epochs": 100,
        "train.decay_epochs": 0,
        "train.weight_decay": 1e-4,
    },
    quick={
        "net.width": 16,
        "net.blocks": 2,
        "net.disc_width": 16,
        "net.dropout": 0.0,
        "net.upsample": "resize",  # no checkerboard grid (nets/conv.py: upsample2x)
        "train.lr": 2e-4,
    },
    tiny={
        "net.width": 8,
        "net.blocks": 1,
        "net.scales": 2,
        "net.disc_width": 8,
        "net.dropout": 0.0,
    },
)
