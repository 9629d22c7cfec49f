"""Safe writing: outputs appear complete or not at all, and nothing the user had is overwritten silently."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from deeplesion.errors import OutputExistsError


def atomic_write_bytes(path: Path, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``force`` is False.
    """
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force (force=True) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


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
        raise OutputExistsError(f"{path} is not empty; pass --force to replace its contents")


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
