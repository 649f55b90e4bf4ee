"""The ``mrtranslate`` command line (see :mod:`mrtranslate.cli.main`)."""

from __future__ import annotations

from mrtranslate.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
