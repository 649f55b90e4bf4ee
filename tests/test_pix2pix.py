"""pix2pix (Isola et al. 2017): U-Net with skips, a conditional PatchGAN, L1 weight 100, paired.

The shared model contract (shapes, gradients, save/load, resume, a tiny training run) covers
pix2pix with every registered model (tests/test_model_contract.py); these tests pin what makes
it pix2pix.
"""

from __future__ import annotations

import pytest
import torch

from mrtranslate.losses import bce_gan_loss, l1
from mrtranslate.methods import get, make_config, study_names
from mrtranslate.methods.pix2pix import Pix2Pix
from mrtranslate.nets.unet import UNetGenerator


def _method(context: int = 1, dropout: float = 0.0) -> Pix2Pix:
    torch.manual_seed(0)
    return Pix2Pix(
        gen_width=8,
        gen_depth=4,
        dropout=dropout,
        disc_width=8,
        l1_weight=100.0,
        name="pix2pix",
        context=context,
    )


def _batch(seed: int = 0, shape=(2, 1, 64, 64)) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.rand(*shape, generator=gen) * 2 - 1 for k in ("t1w", "t2w")}


def test_the_paper_settings_are_the_papers():
    cfg = make_config("pix2pix", "paper")
    assert cfg.loss.l1 == 100.0  # lambda_L1
    assert (cfg.net.width, cfg.net.depth, cfg.net.dropout, cfg.net.disc_width) == (64, 8, 0.5, 64)
    assert (cfg.train.lr, cfg.train.beta1) == (2e-4, 0.5)  # Adam as in the paper
    assert get("pix2pix").paired
    generator = UNetGenerator(in_channels=3, out_channels=3, width=64, depth=8)
    count = sum(p.numel() for p in generator.parameters())
    assert 54.4e6 < count < 54.5e6  # the paper's 256x256 U-Net (54.4 M, its convolutions' biases)


@pytest.mark.parametrize("shape", [(60, 60), (76, 64), (96, 96), (220, 184)])
def test_the_u_net_takes_any_size_divisible_by_4(shape):
    net = UNetGenerator(width=4, depth=5).eval()
    x = torch.rand(1, 1, *shape) * 2 - 1
    y = net(x)
    assert y.shape == x.shape and y.abs().max() <= 1


def test_the_skips_carry_the_input_past_the_bottleneck():
    """A one-pixel change of the input reaches the output at that pixel through the first
    skip (a U-Net without skips would spread it over the whole bottleneck's footprint)."""
    net = UNetGenerator(width=4, depth=4, dropout=0.0).eval()
    x = torch.zeros(1, 1, 64, 64, requires_grad=True)
    net(x)[0, 0, 32, 32].backward()
    near = x.grad[0, 0, 30:35, 30:35].abs().sum()
    assert near > 0 and x.grad[0, 0].abs().sum() > 0
    skips = [m for m in net.up if isinstance(m[1], torch.nn.ConvTranspose2d)]
    assert skips[-1][1].in_channels == 2 * net.down[0][0].out_channels  # concatenated, not added


def test_the_discriminator_sees_the_input_beside_the_output():
    """Conditional: the discriminator's loss changes with the condition (the input image) when
    the real and synthetic outputs stay the same; an unconditional PatchGAN would not notice."""
    method = _method()
    assert method.d_t2.net[0].in_channels == 2 and method.d_t1.net[0].in_channels == 2
    batch = _batch()
    fakes = {"t1w": torch.zeros_like(batch["t1w"]), "t2w": torch.zeros_like(batch["t2w"])}
    other = dict(batch, t1w=-batch["t1w"])  # the condition of d_t2 changed, T2w kept
    with torch.no_grad():
        _, logs = method.discriminator_step(batch, fakes)
        _, logs_other = method.discriminator_step(other, fakes)
    assert not torch.isclose(logs["d/t2"], logs_other["d/t2"])


def test_the_generator_loss_is_the_gan_term_plus_100_times_l1():
    method = _method()
    batch = _batch(1)
    with torch.no_grad():
        loss, logs, fakes = method.generator_step(batch)
        fake_t2 = method.g_t1_to_t2(batch["t1w"])
        fake_t1 = method.g_t2_to_t1(batch["t2w"])
        expected_l1 = l1(fake_t2, batch["t2w"]) + l1(fake_t1, batch["t1w"])
        d_t2 = method.d_t2(torch.cat([batch["t1w"], fake_t2], 1))
        d_t1 = method.d_t1(torch.cat([batch["t2w"], fake_t1], 1))
        expected_gan = bce_gan_loss([d_t2], True) + bce_gan_loss([d_t1], True)
    assert torch.allclose(fakes["t2w"], fake_t2) and torch.allclose(fakes["t1w"], fake_t1)
    assert torch.isclose(loss, expected_gan + 100.0 * expected_l1, rtol=1e-5)
    assert expected_l1 > 0.01  # the L1 term is a real part of the loss here


def test_the_l1_term_counts_the_brain_only_where_asked():
    method = _method()
    method.brain_only = True
    batch = _batch(2)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    with torch.no_grad():
        _, logs, fakes = method.generator_step({**batch, "mask": mask})
    inside = l1(fakes["t2w"], batch["t2w"], mask)
    assert torch.isclose(logs["g/l1_t2"], inside) and not torch.isclose(
        logs["g/l1_t2"], l1(fakes["t2w"], batch["t2w"])
    )


def test_translation_is_deterministic_though_training_uses_dropout():
    method = _method(dropout=0.5)
    x = _batch(3)["t1w"]
    method.train()
    assert not torch.equal(method.g_t1_to_t2(x), method.g_t1_to_t2(x))  # dropout in training
    method.eval()
    with torch.no_grad():
        assert torch.equal(method.translate(x, "t1-to-t2"), method.translate(x, "t1-to-t2"))


def test_pix2pix_is_not_in_the_studys_default_list_until_measured():
    assert "pix2pix" not in study_names() and "generators_s" in study_names()


@pytest.mark.slow
def test_a_study_named_with_pix2pix_trains_evaluates_and_reports_it(small_phantom, tmp_path):
    from mrtranslate.cli import main

    out = tmp_path / "study"
    args = ["study", "--data", str(small_phantom), "--out", str(out), "--profile", "tiny"]
    assert main([*args, "--models", "pix2pix", "simple", "--quiet"]) == 0
    assert (out / "runs" / "pix2pix" / "eval" / "summary.json").is_file()
    assert not (out / "runs" / "cyclegan").exists()  # only the models named
    page = (out / "report" / "report.html").read_text()
    assert "pix2pix" in page and "Simple" in page
