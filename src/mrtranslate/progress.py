"""Progress output that suits both a terminal and a log file.

On a terminal (standard error is a TTY) :func:`progress_bar` is a tqdm bar, redrawn in place
with carriage returns. When standard error is a file or a pipe (a redirected study log, CI, a
batch job), carriage-return bars would leave thousands of overwritten updates in the file, so
it prints plain lines instead: at most one every ``MRTRANSLATE_PROGRESS_SECONDS`` seconds
(default 30), plus one when the work ends, for example::

    cyclegan: 400/600 steps (67%), 2.1 min elapsed, about 1.0 min left; epoch=4/6 g/total=1.32
    cyclegan: done, 600 steps in 3.1 min
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm import tqdm

INTERVAL_VARIABLE = "MRTRANSLATE_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_VARIABLE, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class PlainProgress:
    """A tqdm-like progress counter that prints whole lines (see the module docstring)."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        disable: bool = False,
        stream: TextIO | None = None,
        interval: float | None = None,
    ):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.start_n = initial
        self.disable = disable
        self.stream = stream
        self.interval = _interval() if interval is None else interval
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_postfix(self, values: dict[str, Any] | None = None, refresh: bool = True) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in (values or {}).items())

    def _line(self, text: str) -> None:
        stream = self.stream or sys.stderr
        label = f"{self.desc}: " if self.desc else ""
        print(f"{label}{text}", file=stream, flush=True)

    def update(self, count: int = 1) -> None:
        self.n += count
        now = time.monotonic()
        if self.disable or now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.start
        done = self.n - self.start_n
        text = f"{self.n}/{self.total if self.total else '?'} {self.unit}"
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%)"
        text += f", {_minutes(elapsed)} elapsed"
        if self.total and done > 0:
            text += f", about {_minutes(elapsed / done * (self.total - self.n))} left"
        self._line(text + (f"; {self.postfix}" if self.postfix else ""))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.disable and self.n > self.start_n:
            elapsed = time.monotonic() - self.start
            self._line(f"done, {self.n} {self.unit} in {_minutes(elapsed)}")


def is_terminal(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable: Iterable | None = None, **options) -> tqdm | PlainProgress:
    """A tqdm bar on a terminal, else :class:`PlainProgress`; takes tqdm's common keywords
    (``total``, ``desc``, ``unit``, ``initial``, ``disable``; others are used by tqdm only)."""
    if is_terminal():
        return tqdm(iterable, **options)
    plain = {k: options[k] for k in ("total", "desc", "unit", "initial", "disable") if k in options}
    return PlainProgress(iterable, **plain)
