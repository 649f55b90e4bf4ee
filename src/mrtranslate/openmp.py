"""OpenMP's idle spinning, which must be set before PyTorch is loaded (it imports nothing).

After each parallel region, GNU OpenMP's worker threads spin for ``GOMP_SPINCOUNT`` iterations
(300,000 by default, several milliseconds on CPUs with a slow ``pause`` instruction) before they
sleep. Work that runs on other threads in between, such as NNPACK's convolutions (see
:mod:`mrtranslate.nets.conv`), then shares the cores with spinning threads and runs about half as
fast on 2 cores. A short spin keeps back-to-back regions fast and frees the cores soon after.

Measured on a 2-core AMD EPYC Zen 4 (CycleGAN, paper networks, 256x256, batch 1;
docs/commands/bench.md, "Convolution algorithms"): with ``GOMP_SPINCOUNT=10000`` the tuned
fp32 step on AVX2 kernels took 1.68 s instead of 2.39 s (the tuner picks NNPACK for the
residual blocks either way, but only with a short spin does the whole step gain), the plain
fp32 step was unchanged on AVX2 and faster on AVX-512 (1.32 vs 1.41 s), and the study's bf16
steps were unchanged; ``0`` (never spin) made bf16 steps twice as slow.
"""

from __future__ import annotations

import os
import sys

SPIN_COUNT = "10000"
VARIABLES = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")


def configure() -> bool:
    """Set ``GOMP_SPINCOUNT`` unless the user chose a spin count or wait policy, or PyTorch is
    already loaded (then it would have no effect). Returns True if it was set."""
    if any(v in os.environ for v in VARIABLES[:2]) or "torch" in sys.modules:
        return False
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True


def settings() -> dict[str, str | None]:
    """The OpenMP variables in effect, for run records."""
    return {v: os.environ.get(v) for v in VARIABLES}
