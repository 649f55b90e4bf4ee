"""CycleGAN networks as used by Welander et al. (2018): ResNet generator and 70x70 PatchGAN.

Generator ("c7s1-32, d64, d128, 9 x R128, u64, u32, c7s1-1"; Zhu et al. 2017 with half the
filters): 24 conv layers, 2,849,537 parameters for 1-channel images. Discriminator: 4x4 convs with
64/128/256/512 filters (strides 2, 2, 2, 1), LeakyReLU 0.2, instance norm except on the first
layer, and a linear 4x4 output conv: a 70x70 receptive field and 2,764,481 parameters.
Instance norm has affine parameters and no running statistics, so inference needs no batch.
"""

from __future__ import annotations

import torch
from torch import nn

from mrtranslate.nets.conv import Conv2d, upsample2x


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True, eps=1e-5)


class ResidualBlock(nn.Module):
    """conv3x3 - IN - ReLU - conv3x3 - IN, plus the input (no activation after the sum)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            Conv2d(channels, channels, 3, padding=1),
            _norm(channels),
            nn.ReLU(inplace=True),
            Conv2d(channels, channels, 3, padding=1),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image-to-image ResNet generator.

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        width: filters of the first layer (the paper: 32); doubled by each of 2 down-samplings.
        blocks: residual blocks at 1/4 resolution (the paper: 9).
        upsample: "transpose" (the paper: 3x3 stride-2 transposed convolutions) or "resize"
            (nearest-neighbour x2 and a 3x3 convolution: no checkerboard, same parameters;
            :func:`mrtranslate.nets.conv.upsample2x`).
        skips: add the encoder's features at full and half resolution to the decoder's at the
            same resolution (U-Net-like additive skips, Ronneberger et al. 2015; no new
            parameters). Off in the paper: every detail then passes through the 1/4-resolution
            bottleneck.

    Input (B, in_channels, H, W) float in [-1, 1] with H, W divisible by 4; output
    (B, out_channels, H, W) in [-1, 1] (tanh).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 32,
        blocks: int = 9,
        upsample: str = "transpose",
        skips: bool = False,
    ):
        super().__init__()
        self.skips = skips
        w = width
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            Conv2d(in_channels, w, 7),
            _norm(w),
            nn.ReLU(inplace=True),
        ]
        # Indices of the ReLUs whose output the skips keep (full, then half resolution) and of
        # those whose output receives it (half, then full resolution).
        kept, receiving = [len(layers) - 1], []
        for mult in (1, 2):
            layers += [
                Conv2d(w * mult, w * mult * 2, 3, stride=2, padding=1),
                _norm(w * mult * 2),
                nn.ReLU(inplace=True),
            ]
            kept.append(len(layers) - 1)
        kept.pop()  # the quarter-resolution features go on through the residual blocks
        layers += [ResidualBlock(w * 4) for _ in range(blocks)]
        for mult in (4, 2):
            layers += [
                upsample2x(w * mult, w * mult // 2, upsample),
                _norm(w * mult // 2),
                nn.ReLU(inplace=True),
            ]
            receiving.append(len(layers) - 1)
        layers += [nn.ReflectionPad2d(3), Conv2d(w, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)  # one Sequential: the paper's checkpoints keep loading
        self._kept, self._receiving = tuple(kept), tuple(receiving)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"image height and width must be divisible by 4, got {x.shape[-2:]}")
        if not self.skips:
            return self.net(x)
        kept = []
        for index, layer in enumerate(self.net):
            x = layer(x)
            if index in self._kept:
                kept.append(x)
            elif index in self._receiving:
                x = x + kept.pop()
        return x


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN discriminator with a linear output (for the least-squares GAN loss).

    This is the layer table of the authors' *later* code (October 2019: layer 4 at stride 1,
    commit 7ea3b66; sigmoid removed, commit f63e147). The paper's 2018 results came from the
    earlier table: all four 4x4 convs at stride 2 (a 94x94 receptive field, 19x16 patches for
    304x256 images) and a sigmoid output trained with the MSE loss. Filters 64-128-256-512 and
    the parameter count are the same in both.

    Args:
        in_channels: channels of the input image.
        width: filters of the first layer (64), doubled per layer up to 8x.

    Input (B, in_channels, H, W) float in [-1, 1]; output (B, 1, H/8 - 2, W/8 - 2) raw scores.
    """

    def __init__(self, *, in_channels: int = 1, width: int = 64):
        super().__init__()
        w = width
        layers: list[nn.Module] = [
            Conv2d(in_channels, w, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for mult_in, mult_out, stride in ((1, 2, 2), (2, 4, 2), (4, 8, 1)):
            layers += [
                Conv2d(w * mult_in, w * mult_out, 4, stride=stride, padding=1),
                _norm(w * mult_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(Conv2d(w * 8, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 32:
            raise ValueError(f"PatchGAN needs images of at least 32x32, got {tuple(x.shape[-2:])}")
        return self.net(x)
