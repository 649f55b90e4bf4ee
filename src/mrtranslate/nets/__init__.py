"""Networks: plain ``nn.Module``s with explicit keyword arguments (no losses, no configs)."""

from mrtranslate.nets.cyclegan import PatchDiscriminator, ResnetGenerator
from mrtranslate.nets.simple import SimpleTranslator
from mrtranslate.nets.unit import UnitDecoder, UnitEncoder, UnitMultiScaleDiscriminator

__all__ = [
    "PatchDiscriminator",
    "ResnetGenerator",
    "SimpleTranslator",
    "UnitDecoder",
    "UnitEncoder",
    "UnitMultiScaleDiscriminator",
]


def count_parameters(module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
