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


def test_unit_resize_decoder_prints_no_grid():
    """A constant latent must decode to a constant interior: the paper's 3x3 stride-2
    transposed convolutions print a period-4 grid instead (the cause of UNIT's grid on real
    scans); the resize decoder does not, with the same number of parameters."""
    from mrtranslate.nets import count_parameters
    from mrtranslate.nets.unit import UnitDecoder, init_normal

    torch.manual_seed(0)
    latent = torch.randn(1, 32, 1, 1).expand(1, 32, 12, 12).contiguous()
    interiors = {}
    for upsample in ("transpose", "resize"):
        decoder = UnitDecoder(width=8, blocks=0, upsample=upsample)
        init_normal(decoder)
        with torch.no_grad():
            out = decoder(latent)[0, 0]
        assert out.shape == (48, 48)
        interiors[upsample] = out[8:-8, 8:-8]
    grid = interiors["transpose"]
    assert grid.std() > 1e-4
    assert torch.allclose(grid, grid.roll(4, 0)) and torch.allclose(grid, grid.roll(4, 1))
    assert interiors["resize"].std() < 1e-6
    sizes = {
        u: count_parameters(UnitDecoder(width=8, blocks=1, upsample=u))
        for u in ("transpose", "resize")
    }
    assert sizes["transpose"] == sizes["resize"]


@pytest.mark.parametrize("profile, grid", [("quick", False), ("paper", True)])
def test_unit_profiles_decode_a_constant_latent(profile, grid):
    """The study's quick profile decodes without a grid; the paper profile keeps the paper's
    transposed convolutions (and their grid)."""
    from mrtranslate.methods import build_method, make_config

    cfg = make_config("unit", profile)
    method = build_method("unit", cfg.net, cfg.loss, (48, 48)).eval()
    upsampling = method.dec_t2.net[-6:]  # up, act, up, act, 1x1, tanh (after the res blocks)
    channels = upsampling[-2].in_channels * 4
    torch.manual_seed(1)
    latent = torch.randn(1, channels, 1, 1).expand(1, channels, 12, 12).contiguous()
    with torch.no_grad():
        interior = upsampling(latent)[0, 0, 8:-8, 8:-8]
    assert bool(interior.std() > 1e-4) is grid


@pytest.mark.parametrize("upsample, grid", [("resize", False), ("transpose", True)])
def test_resnet_generator_upsampling_grid(upsample, grid):
    """The ResNet generator's up-sampling half (everything after the residual blocks) turns a
    constant feature map into a constant interior with resize up-sampling; the paper's two
    3x3 stride-2 transposed convolutions print a period-4 grid (the checkerboard seen on real
    scans). Same parameter count either way."""
    from mrtranslate.nets import ResnetGenerator, count_parameters

    torch.manual_seed(1)
    generator = ResnetGenerator(width=8, blocks=1, upsample=upsample).eval()
    layers = list(generator.net)
    first_up = max(i for i, m in enumerate(layers) if type(m).__name__ == "ResidualBlock") + 1
    decoder = torch.nn.Sequential(*layers[first_up:])
    features = torch.randn(1, 32, 1, 1).expand(1, 32, 12, 12).contiguous()
    with torch.no_grad():
        interior = decoder(features)[0, 0, 12:-12, 12:-12]
    assert bool(interior.std() > 1e-4) is grid
    sizes = {
        u: count_parameters(ResnetGenerator(width=8, blocks=1, upsample=u))
        for u in ("transpose", "resize")
    }
    assert sizes["transpose"] == sizes["resize"]


@pytest.mark.parametrize("model", ["cyclegan", "cyclegan_s", "generators_s"])
def test_generator_upsampling_reaches_the_networks(model):
    """``net.upsample`` builds the generators it names; the paper profile keeps the paper's
    transposed convolutions, the quick profile the measured choice."""
    from mrtranslate.config import apply_overrides
    from mrtranslate.methods import build_method, make_config
    from mrtranslate.nets.conv import Conv2d

    assert make_config(model, "paper").net.upsample == "transpose"
    # quick: resize where the adversarial models printed a checkerboard on real scans, the
    # paper's transposed convolutions for Generators_s (resize measured no better there)
    quick = "transpose" if model == "generators_s" else "resize"
    assert make_config(model, "quick").net.upsample == quick
    for upsample, layer in (("transpose", torch.nn.ConvTranspose2d), ("resize", Conv2d)):
        cfg = apply_overrides(make_config(model, "tiny"), [f"net.upsample={upsample}"])
        method = build_method(model, cfg.net, cfg.loss, (32, 32))
        for generator in (method.g_t1_to_t2, method.g_t2_to_t1):
            ups = [m for m in generator.modules() if isinstance(m, torch.nn.Upsample)]
            transposed = [m for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
            assert (len(ups), len(transposed)) == ((0, 2) if upsample == "transpose" else (2, 0))
            assert any(isinstance(m, layer) for m in generator.modules())
