"""Atomic file and folder writes: a crash never leaves a half-written file that looks complete."""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _json_safe(value: Any) -> Any:
    """Replace non-finite floats by strings ("inf", "-inf", "nan") so the JSON is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _json_safe(value.item())
    return value


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: Path, keep: Path | None = None) -> None:
    """Delete ``.<name>.*.tmp`` files that an earlier, killed write of ``path`` left behind."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if stale != keep:
            stale.unlink(missing_ok=True)


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[Path], None],
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` (same folder, so atomic).

    The file gets the permissions of any new file (0666 less the umask), and temporary files
    left by an earlier write of ``path`` that was killed are removed. ``before_replace`` runs
    once the new content is complete, just before it replaces ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    _remove_stale_temporaries(path, keep=Path(tmp))
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy_atomic(path: str | os.PathLike, array) -> None:
    """Save a NumPy array as ``.npy`` atomically (no pickles)."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)

    atomic_write(path, write)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented, standard JSON (non-finite floats become strings) atomically."""
    write_text_atomic(path, json.dumps(_json_safe(data), indent=2, allow_nan=False) + "\n")


def to_json(data: Any) -> str:
    """Serialise ``data`` to standard JSON text (non-finite floats become strings)."""
    return json.dumps(_json_safe(data), indent=2, allow_nan=False)


def check_writable_parent(path: Path, probe: bool = False) -> None:
    """Raise ``PermissionError`` when the nearest existing parent of ``path`` is not a writable
    folder. With ``probe``, a temporary file is created there and removed (this also catches
    read-only file systems, which permission bits do not show)."""
    parent = Path(path).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise PermissionError(f"{parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"cannot write to {parent}")
    if probe:
        try:
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as exc:
            raise PermissionError(f"cannot write to {parent}: {exc.strerror}") from None


@contextmanager
def atomic_directory(out: Path, overwrite: bool) -> Iterator[Path]:
    """Build a folder in a hidden temporary sibling and move it onto ``out`` only on success.

    An interrupted build leaves only the hidden ``.<name>.partial-*`` folder, never something at
    ``out`` that looks complete. With ``overwrite`` an existing ``out`` is replaced only after the
    new folder is complete.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # like any new folder, not mkdtemp's 0700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        if any(out.iterdir()) and not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{out} exists and is not empty")
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_digest(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"
