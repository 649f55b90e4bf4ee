"""The method protocol that the generic trainer drives, and the image pool of past fakes."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn

from mrtranslate.directions import DIRECTIONS, Direction

Batch = dict[str, torch.Tensor]
Logs = dict[str, torch.Tensor]


class Method(nn.Module, ABC):
    """A translation method: its networks, loss weights and the two optimisation steps.

    Images are (B, C, H, W) float tensors in [-1, 1], C = :attr:`context` neighbouring slices
    in slice order (1: the paper's single slice); a batch is ``{"t1w": ..., "t2w": ...}``
    (paired or not, see :attr:`paired`). Steps return a scalar loss (float32), detached
    log values, and for the generator step the generated images that the discriminator step
    reuses (so no fake is computed twice).
    """

    name: str = ""
    paired: bool = False  # True: the batch's T1w and T2w are the same subjects
    context: int = 1  # slices per image stack (channels in and out); the centre one is translated

    @classmethod
    @abstractmethod
    def from_config(cls, *, spec, net, loss, image_shape: tuple[int, int]) -> Method:
        """Build the model of ``spec`` (a :class:`~mrtranslate.methods.registry.ModelSpec`)
        from the run's ``net`` and ``loss`` config sections."""

    @abstractmethod
    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters updated by the generator optimiser."""

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return []

    @abstractmethod
    def generator_step(self, batch: Batch) -> tuple[torch.Tensor, Logs, Batch]:
        """Losses of the generators. Returns (loss, logs, fakes) with fakes detached."""

    @abstractmethod
    def discriminator_step(self, batch: Batch, fakes: Batch) -> tuple[torch.Tensor, Logs]:
        """Losses of the discriminators on real images and (pooled) detached fakes."""

    @abstractmethod
    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        """Translate (B, C, H, W) stacks in [-1, 1]; ``direction`` is 't1-to-t2' or 't2-to-t1'.

        Returns (B, C, H, W) in [-1, 1] (channel C // 2: the centre slice). Call in eval mode
        for deterministic output.
        """

    @abstractmethod
    def generators(self) -> dict[str, nn.Module]:
        """The modules needed by :meth:`translate` (for parameter counts and export)."""

    def discriminators(self) -> dict[str, nn.Module]:
        return {}


class TranslatorPair:
    """For methods with one translator per direction, ``g_t1_to_t2`` and ``g_t2_to_t1``
    (CycleGAN, pix2pix, the supervised models): the generator accessors of :class:`Method`."""

    g_t1_to_t2: nn.Module
    g_t2_to_t1: nn.Module

    def generators(self) -> dict[str, nn.Module]:
        return {"g_t1_to_t2": self.g_t1_to_t2, "g_t2_to_t1": self.g_t2_to_t1}

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.g_t1_to_t2.parameters(), *self.g_t2_to_t1.parameters()]

    def translator(self, direction: str) -> nn.Module:
        """The network that translates along ``direction`` ('t1-to-t2' or 't2-to-t1')."""
        check_direction(direction)
        return self.g_t1_to_t2 if direction == Direction.T1_TO_T2 else self.g_t2_to_t1


class DiscriminatorPair:
    """For methods with one discriminator per contrast, ``d_t1`` and ``d_t2`` (CycleGAN,
    pix2pix): the discriminator accessors of :class:`Method`."""

    d_t1: nn.Module
    d_t2: nn.Module

    def discriminators(self) -> dict[str, nn.Module]:
        return {"d_t1": self.d_t1, "d_t2": self.d_t2}

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.d_t1.parameters(), *self.d_t2.parameters()]


def score_real_and_fake(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor):
    """One discriminator call on real and fake images together, split back into two.

    The same function as two calls, because the discriminators treat every image of a batch
    independently (instance norm or no norm), but one larger call uses the CPU better.
    Returns the two outputs (tensors, or lists of tensors for multi-scale discriminators).
    """
    scores = discriminator(torch.cat([real, fake.to(real.dtype)]))
    sizes = [real.shape[0], fake.shape[0]]
    if isinstance(scores, list):
        parts = [s.split(sizes) for s in scores]
        return [p[0] for p in parts], [p[1] for p in parts]
    return scores.split(sizes)


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 't1-to-t2' or 't2-to-t1', got {direction!r}")


class ImagePool(nn.Module):
    """History of up to ``size`` past fakes for the discriminator (Shrivastava et al. 2017).

    Each incoming fake is stored while the pool fills; once full, with probability 1/2 a random
    stored fake is returned and replaced by the new one, otherwise the new one is returned.
    Contents are buffers, so the pool is saved with the method's state dict. Randomness follows
    the global torch seed, which the trainer sets at every step.
    """

    def __init__(self, size: int, image_shape: tuple[int, int], channels: int = 1):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, channels, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self._filled: int | None = 0  # host copy of ``count``; None: read it at the next query

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._filled = None

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) fakes -> (B, C, H, W) images to show the discriminator.

        Never reads the device: the fill level is kept on the host (read from the buffer once
        after loading a checkpoint), and the coin flips come from a host generator seeded by the
        global torch seed (which the trainer sets per step) and the fill level."""
        if self.size == 0:
            return fakes
        if self._filled is None:
            self._filled = int(self.count)
        rng = np.random.default_rng([torch.initial_seed(), self._filled, fakes.shape[0]])
        out = []
        for fake in fakes.detach():
            if self._filled < self.size:
                self.images[self._filled] = fake.to(self.images.dtype)
                self._filled += 1
                self.count += 1
                out.append(fake)
            elif rng.random() < 0.5:
                j = int(rng.integers(self.size))
                out.append(self.images[j].clone().to(fake.dtype))
                self.images[j] = fake.to(self.images.dtype)
            else:
                out.append(fake)
        return torch.stack(out)
