"""The two translation directions, in one place.

:class:`Direction` is a string enum, so ``Direction.T1_TO_T2 == "t1-to-t2"`` and the values
appear unchanged in file names (``synthetic_t1-to-t2.npy``), JSON and the command line.
"""

from __future__ import annotations

from enum import StrEnum

from mrtranslate.errors import UsageError


class Direction(StrEnum):
    """A translation direction, with the contrasts it reads and writes."""

    T1_TO_T2 = "t1-to-t2"
    T2_TO_T1 = "t2-to-t1"

    @property
    def source(self) -> str:
        """The contrast translated from (``t1w`` or ``t2w``)."""
        return "t1w" if self is Direction.T1_TO_T2 else "t2w"

    @property
    def target(self) -> str:
        """The contrast translated to (``t2w`` or ``t1w``)."""
        return "t2w" if self is Direction.T1_TO_T2 else "t1w"

    @classmethod
    def producing(cls, contrast: str) -> Direction:
        """The direction whose output is ``contrast`` (``t1w`` -> t2-to-t1)."""
        return cls.T2_TO_T1 if contrast == "t1w" else cls.T1_TO_T2

    @classmethod
    def parse(cls, text: str) -> Direction:
        """``t1-to-t2`` / ``t2-to-t1`` -> a Direction; a usage error otherwise."""
        try:
            return cls(text)
        except ValueError:
            choices = " or ".join(d.value for d in cls)
            raise UsageError(f"direction must be {choices}, got {text!r}") from None


DIRECTIONS: tuple[Direction, ...] = tuple(Direction)
