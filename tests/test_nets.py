"""Networks: the paper's parameter counts, shapes and output ranges."""

from __future__ import annotations

import pytest
import torch

from mrtranslate.nets import (
    PatchDiscriminator,
    ResnetGenerator,
    SimpleTranslator,
    UnitDecoder,
    UnitEncoder,
    UnitMultiScaleDiscriminator,
    count_parameters,
)
from mrtranslate.nets.unit import UnitResBlock


def test_paper_parameter_counts():
    assert count_parameters(ResnetGenerator()) == 2_849_537
    assert count_parameters(PatchDiscriminator()) == 2_764_481
    assert count_parameters(UnitEncoder()) == 3_915_776
    assert count_parameters(UnitResBlock(256)) == 1_181_184
    assert count_parameters(UnitDecoder()) == 3_912_449
    assert count_parameters(UnitMultiScaleDiscriminator()) == 3 * 1_550_337
    assert count_parameters(SimpleTranslator()) == 769


def test_cyclegan_generator_has_24_conv_layers():
    convs = [
        m
        for m in ResnetGenerator().modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    ]
    assert len(convs) == 24


@pytest.mark.parametrize("shape", [(32, 32), (64, 48), (76, 64)])
def test_generator_shapes_and_range(shape):
    x = torch.rand(2, 1, *shape) * 2 - 1
    for net in (
        ResnetGenerator(width=8, blocks=2),
        torch.nn.Sequential(UnitEncoder(width=8, blocks=1), UnitDecoder(width=8, blocks=1)),
    ):
        y = net(x)
        assert y.shape == x.shape
        assert y.min() >= -1 and y.max() <= 1
    assert SimpleTranslator(width=16)(x).shape == x.shape


def test_patchgan_output_and_receptive_field():
    d = PatchDiscriminator(width=8)
    assert d(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 30, 30)
    with pytest.raises(ValueError):
        d(torch.zeros(1, 1, 16, 16))
    # 70x70 receptive field: only pixels within reach affect one score. Instance norm couples all
    # pixels through its statistics, so it is replaced by identity for this check.
    d = PatchDiscriminator(width=4).eval()
    for i, layer in enumerate(d.net):
        if isinstance(layer, torch.nn.InstanceNorm2d):
            d.net[i] = torch.nn.Identity()
    x = torch.randn(1, 1, 256, 256, requires_grad=True)
    d(x)[0, 0, 15, 15].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert int(rows.max() - rows.min()) + 1 == 70
    assert int(cols.max() - cols.min()) + 1 == 70


def test_unit_discriminator_scales():
    outs = UnitMultiScaleDiscriminator(width=8)(torch.zeros(1, 1, 64, 64))
    assert [o.shape[-1] for o in outs] == [4, 2, 1]


def test_size_not_divisible_by_four_raises():
    with pytest.raises(ValueError):
        ResnetGenerator(width=8, blocks=1)(torch.zeros(1, 1, 34, 32))
