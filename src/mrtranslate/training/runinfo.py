"""What a run folder records about where it came from: versions, git commit, command line."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from mrtranslate import __version__, openmp
from mrtranslate.hardware import cuda_math_flags


def git_commit() -> str:
    """The git commit of the mrtranslate source tree (with '+dirty'), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def environment() -> dict:
    """Package versions and the machine, for reproducibility records."""
    return {
        "mrtranslate": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "cuda_math": cuda_math_flags(),
        "openmp": openmp.settings(),
        "git_commit": git_commit(),
        "command": sys.argv,
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
