"""The ``mrtranslate`` command line (see :mod:`mrtranslate.cli.main`)."""

from __future__ import annotations

from mrtranslate import openmp

openmp.configure()  # before anything loads PyTorch: OpenMP reads it once, at load

from mrtranslate.cli.main import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]
