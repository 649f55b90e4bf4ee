"""The pix2pix U-Net generator (Isola et al., CVPR 2017, section 3.2.1 and appendix 6.1.1).

Encoder ``C64-C128-C256-C512-C512-C512-C512-C512`` (4x4 convolutions at stride 2, LeakyReLU 0.2,
instance norm except on the first and the innermost layer); decoder the mirror image
(``CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128`` counting the concatenated skips: 4x4
transposed convolutions at stride 2, ReLU, instance norm, dropout 0.5 on the three innermost
decoder layers), each decoder layer's output concatenated with the encoder layer of the same
resolution; a last transposed convolution to the output channels and tanh.

``depth`` down-samplings (the paper: 8 for 256x256 images, a 1x1 bottleneck); images of any size
divisible by 4 are reflection-padded to a multiple of ``2**depth`` and the output cropped back,
so crops, tiles and whole slices of any data set pass through the same network.

Normalisation: the paper uses batch norm with the test batch's statistics at test time, and a
batch of one; that is instance norm, which this network uses in training and translation alike
(translations then do not depend on which tiles share a batch). Dropout is active in training
only (translations are deterministic; the paper also kept it at test time as noise).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrtranslate.nets.conv import Conv2d

MAX_WIDTH_MULTIPLE = 8  # filters stop doubling at 8x the first layer's (C512 for width 64)
DROPOUT_LAYERS = 3  # the innermost decoder layers with dropout (CD512-CD1024-CD1024)


def _norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True, eps=1e-5)


class UNetGenerator(nn.Module):
    """pix2pix U-Net: ``depth`` stride-2 encoder layers, a mirrored decoder, skip concatenation.

    Args:
        in_channels: channels of the input image stack.
        out_channels: channels of the output stack.
        width: filters of the first layer (the paper: 64), doubled per layer up to 8x.
        depth: down-samplings (the paper: 8); the input is padded to a multiple of 2**depth.
        dropout: dropout probability on the innermost ``DROPOUT_LAYERS`` decoder layers (0.5).

    Input (B, in_channels, H, W) float in [-1, 1]; output (B, out_channels, H, W) in [-1, 1].
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 64,
        depth: int = 8,
        dropout: float = 0.5,
    ):
        super().__init__()
        if depth < 2:
            raise ValueError(f"a U-Net needs at least 2 down-samplings, got depth {depth}")
        self.depth = depth
        filters = [width * min(2**i, MAX_WIDTH_MULTIPLE) for i in range(depth)]
        self.down = nn.ModuleList()
        previous = in_channels
        for index, out in enumerate(filters):
            layers: list[nn.Module] = [] if index == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            layers.append(Conv2d(previous, out, 4, stride=2, padding=1))
            if 0 < index < depth - 1:  # no norm on the first and the innermost layer
                layers.append(_norm(out))
            self.down.append(nn.Sequential(*layers))
            previous = out
        self.up = nn.ModuleList()
        for index in reversed(range(depth)):  # innermost first
            target = filters[index - 1] if index > 0 else None
            incoming = filters[index] * (1 if index == depth - 1 else 2)  # + the skip
            if target is None:
                layers = [
                    nn.ReLU(inplace=False),
                    nn.ConvTranspose2d(incoming, out_channels, 4, stride=2, padding=1),
                    nn.Tanh(),
                ]
            else:
                layers = [
                    nn.ReLU(inplace=False),
                    nn.ConvTranspose2d(incoming, target, 4, stride=2, padding=1),
                    _norm(target),
                ]
                if depth - 1 - index < DROPOUT_LAYERS and dropout > 0:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 4 or w % 4:
            raise ValueError(f"image height and width must be divisible by 4, got {(h, w)}")
        multiple = 2**self.depth
        pad_h, pad_w = -h % multiple, -w % multiple
        if pad_h or pad_w:
            # reflection needs the padding smaller than the side: replicate beyond that
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode)
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the innermost output feeds the decoder directly
        for layer in self.up:
            x = layer(x)
            if skips:
                x = torch.cat([x, skips.pop()], dim=1)
        top, left = pad_h // 2, pad_w // 2
        return x[..., top : top + h, left : left + w]
