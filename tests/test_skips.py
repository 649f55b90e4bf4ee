"""Encoder-to-decoder skips in the ResNet generator: they carry the encoder's features past the
bottleneck, add no parameters, reach the models through ``net.skips`` and are off in the paper."""

from __future__ import annotations

import pytest
import torch

from mrtranslate.config import apply_overrides
from mrtranslate.methods import build_method, make_config
from mrtranslate.nets import ResnetGenerator

SHAPE = (32, 32)


def _generator(skips: bool) -> ResnetGenerator:
    torch.manual_seed(0)
    return ResnetGenerator(width=4, blocks=1, skips=skips).eval()


def _depends_on_input(generator: ResnetGenerator) -> bool:
    torch.manual_seed(1)
    a, b = torch.rand(2, 1, 1, *SHAPE) * 2 - 1
    with torch.no_grad():
        return not torch.allclose(generator(a), generator(b), atol=1e-6)


@pytest.mark.parametrize("cut, full_skip_needed", [(4, True), (7, False)])
def test_skips_carry_the_encoder_features_past_a_cut_bottleneck(cut, full_skip_needed):
    """With the weights of a down-sampling convolution zeroed (layer 4: the first, full to half
    resolution; layer 7: the second, half to quarter), nothing of the input reaches the output
    through the bottleneck. Without skips the output no longer depends on the input; with
    them it does, through the full-resolution skip (cut at 4) or through both (cut at 7)."""
    for skips in (False, True):
        generator = _generator(skips)
        with torch.no_grad():
            generator.net[cut].weight.zero_()
            generator.net[cut].bias.zero_()
        assert _depends_on_input(generator) is skips
    if full_skip_needed:  # cut at 4, only the full-resolution skip can carry the input
        generator = _generator(True)
        generator._kept = (6,)  # the half-resolution skip alone
        generator._receiving = (len(generator.net) - 7,)
        with torch.no_grad():
            generator.net[cut].weight.zero_()
            generator.net[cut].bias.zero_()
        assert not _depends_on_input(generator)


def test_skips_add_no_parameters_and_load_the_papers_weights():
    plain, skipped = _generator(False), _generator(True)
    skipped.load_state_dict(plain.state_dict(), strict=True)
    x = torch.rand(1, 1, *SHAPE) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(plain(x), skipped(x))
        skipped.skips = False
        assert torch.equal(plain(x), skipped(x))


@pytest.mark.parametrize("model", ["cyclegan", "cyclegan_s", "generators_s"])
def test_net_skips_reaches_the_generators_and_is_off_in_the_paper(model):
    assert make_config(model, "paper").net.skips is False
    for value in (False, True):
        cfg = apply_overrides(make_config(model, "tiny"), [f"net.skips={str(value).lower()}"])
        method = build_method(model, cfg.net, cfg.loss, SHAPE)
        assert method.g_t1_to_t2.skips is value and method.g_t2_to_t1.skips is value
