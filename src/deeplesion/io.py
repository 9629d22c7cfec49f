"""Safe writing: outputs appear complete or not at all, and nothing the user had is overwritten silently."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deeplesion.errors import OutputExistsError

_LIVE_TEMPORARIES: set[str] = set()
"""Temporary files being written by this process (removed by :func:`remove_live_temporaries`)."""


@contextlib.contextmanager
def replacing(path: Path, *, suffix: str = ".part") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary name is unique (``mkstemp`` in the target folder: ``.NAME.<random><suffix>``), so two
    processes writing the same output never share one; the last rename wins and ``path`` is always one
    complete file. On any failure the temporary file is removed and ``path`` is left as it was. Give
    ``suffix`` when the writer chooses a format by extension (``.nii.gz``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    _LIVE_TEMPORARIES.add(tmp)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        _LIVE_TEMPORARIES.discard(tmp)


def remove_live_temporaries() -> None:
    """Remove the temporary files this process is writing (a worker being terminated calls this)."""
    for tmp in list(_LIVE_TEMPORARIES):
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_write_bytes(path: Path, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to ``path`` via a uniquely named temporary file and an atomic rename.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``force`` is False.
    """
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass `force=True` to replace it")
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return path


def describe_array(array: Any) -> str:
    """A one-line summary of an array for reprs: ``float32 (9, 306, 312)``, never its values."""
    return f"{array.dtype} {tuple(array.shape)}"


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file (``md5``, ``sha256``, ...), read in blocks."""
    import hashlib

    with path.open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_dir(path: Path, *, force: bool = False) -> None:
    """Refuse a non-empty output folder unless ``force`` (then its contents are replaced).

    Raises
    ------
    OutputExistsError
        ``path`` is a non-empty folder (or a file) and ``force`` is False.
    """
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputExistsError(f"{path} is not empty; pass `force=True` to replace its contents")


@contextlib.contextmanager
def staged_dir(path: Path, *, force: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path``; move it into place only on success.

    On failure the staging folder is removed and ``path`` is left as it was. With ``force`` an existing
    ``path`` is replaced (only after the new one is complete).
    """
    check_output_dir(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(stage, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, path)
