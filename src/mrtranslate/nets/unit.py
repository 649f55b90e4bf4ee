"""UNIT networks (Liu et al. 2017) in the configuration of Welander et al. (2018).

Per domain an encoder (7x7 conv 64, stride-2 3x3 convs 128 and 256, 3 residual blocks: 3,915,776
parameters), one residual block shared by both domains on each side of the shared latent space
(1,181,184 each), per domain a decoder ("generator": 3 residual blocks, transposed convs to 128 and
64, 1x1 transposed conv to 1 channel, tanh: 3,912,449 parameters) and a discriminator on 3 scales
(3x3 convs 64/128/256/512 with stride 2, LeakyReLU 0.01, no norm, 1x1 output: 1,550,337 parameters
per scale). ``upsample="resize"`` (the quick profile's choice) replaces the decoder's transposed
convolutions by nearest-neighbour up-sampling and a 3x3 convolution, which removes the grid the
transposed convolutions print on every output (see
:func:`mrtranslate.nets.conv.upsample2x`); the paper profile keeps them.

Corrections of the seed code's defects (Keras UNIT of Welander et al.):
- normalisation is instance norm with affine parameters. The seed code used batch norm always in
  training mode with batch 1, which is the same operation during training; here inference uses
  no batch statistics either;
- dropout (if enabled) and the latent noise are active only in training mode, so inference is
  deterministic;
- the intended N(0, 0.02) initialisation (:func:`init_normal`) and weight decay really apply
  (the seed code assigned them after building the layers, where Keras ignores them).
"""

from __future__ import annotations

import torch
from torch import nn

from mrtranslate.nets.conv import Conv2d, upsample2x


class UnitResBlock(nn.Module):
    """conv3x3 - IN - ReLU - conv3x3 - IN (- dropout in training) plus the input."""

    def __init__(self, channels: int, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [
            Conv2d(channels, channels, 3, padding=1),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            Conv2d(channels, channels, 3, padding=1),
            nn.InstanceNorm2d(channels, affine=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UnitEncoder(nn.Module):
    """Domain encoder: (B, in_channels, H, W) in [-1, 1] -> (B, 4*width, H/4, W/4) features.

    Args:
        in_channels: image channels.
        width: filters of the first conv (64); the latent has 4*width channels.
        blocks: residual blocks at 1/4 resolution (3).
        dropout: dropout probability inside residual blocks during training (0 = none).
    """

    def __init__(
        self, *, in_channels: int = 1, width: int = 64, blocks: int = 3, dropout: float = 0.0
    ):
        super().__init__()
        act = nn.LeakyReLU(0.01, inplace=True)
        self.net = nn.Sequential(
            Conv2d(in_channels, width, 7, padding=3),
            act,
            Conv2d(width, width * 2, 3, stride=2, padding=1),
            act,
            Conv2d(width * 2, width * 4, 3, stride=2, padding=1),
            act,
            *[UnitResBlock(width * 4, dropout) for _ in range(blocks)],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"image height and width must be divisible by 4, got {x.shape[-2:]}")
        return self.net(x)


class UnitDecoder(nn.Module):
    """Domain decoder ("generator"): (B, 4*width, H/4, W/4) -> (B, out_channels, H, W) in [-1, 1].

    Args:
        out_channels: image channels.
        width: as for the encoder.
        blocks: residual blocks before up-sampling (3).
        dropout: dropout probability inside residual blocks during training.
    """

    def __init__(
        self,
        *,
        out_channels: int = 1,
        width: int = 64,
        blocks: int = 3,
        dropout: float = 0.0,
        upsample: str = "transpose",
    ):
        super().__init__()
        act = nn.LeakyReLU(0.01, inplace=True)
        self.net = nn.Sequential(
            *[UnitResBlock(width * 4, dropout) for _ in range(blocks)],
            upsample2x(width * 4, width * 2, upsample),
            act,
            upsample2x(width * 2, width, upsample),
            act,
            nn.ConvTranspose2d(width, out_channels, 1),
            nn.Tanh(),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class UnitScaleDiscriminator(nn.Sequential):
    """One scale: 3x3 stride-2 convs (w, 2w, 4w, 8w) with LeakyReLU 0.01, then a 1x1 conv."""

    def __init__(self, in_channels: int, width: int):
        layers: list[nn.Module] = []
        channels = in_channels
        for mult in (1, 2, 4, 8):
            layers += [
                Conv2d(channels, width * mult, 3, stride=2, padding=1),
                nn.LeakyReLU(0.01, inplace=True),
            ]
            channels = width * mult
        layers.append(Conv2d(channels, 1, 1))
        super().__init__(*layers)


class UnitMultiScaleDiscriminator(nn.Module):
    """Discriminators with their own weights on the image and on 2x and 4x average-pooled copies.

    Args:
        in_channels: image channels.
        width: filters of the first layer of each scale (64).
        scales: number of scales (3).

    Input (B, C, H, W) in [-1, 1]; output a list of ``scales`` logit maps (for BCE with logits).
    """

    def __init__(self, *, in_channels: int = 1, width: int = 64, scales: int = 3):
        super().__init__()
        self.scales = nn.ModuleList(
            UnitScaleDiscriminator(in_channels, width) for _ in range(scales)
        )
        self.pool = nn.AvgPool2d(2, stride=2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, disc in enumerate(self.scales):
            if i:
                x = self.pool(x)
            outputs.append(disc(x))
        return outputs


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) weights and zero biases for every conv (UNIT's intended initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
