"""mrtranslate: T1w <-> T2w brain MR image translation with GANs, and honest evaluation."""

__version__ = "0.1.0"
