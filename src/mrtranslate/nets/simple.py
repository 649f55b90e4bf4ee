"""The paper's "Simple" baseline: two 1x1 conv layers (a learned per-pixel intensity map)."""

from __future__ import annotations

import torch
from torch import nn

from mrtranslate.nets.conv import Conv2d


class SimpleTranslator(nn.Module):
    """1x1 conv with ``width`` filters and ReLU, then a linear 1x1 conv to ``out_channels``.

    With width 256 and one channel in and out it has 769 parameters. Input (B, C, H, W) float in
    [-1, 1]; output (B, out_channels, H, W), unbounded (linear, as in the seed code).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, width: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            Conv2d(in_channels, width, 1),
            nn.ReLU(inplace=True),
            Conv2d(width, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
