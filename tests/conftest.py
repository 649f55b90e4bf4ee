"""Shared fixtures: small phantom data sets built once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def small_phantom(tmp_path_factory):
    """A 24-subject phantom (20 train / 4 test) at 64x64, 2.8 mm pixels (whole brain in view)."""
    from mrtranslate.data.build import build_phantom
    from mrtranslate.data.phantom import PhantomSpec

    out = tmp_path_factory.mktemp("data") / "phantom"
    spec = PhantomSpec(subjects=24, test_subjects=4, height=64, width=64, spacing=3.0, seed=3)
    return build_phantom(spec, out, workers=1, progress=False)
