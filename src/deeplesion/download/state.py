"""The state folder ``ROOT/.deeplesion``: the lock, what was verified, per-archive extraction records,
and ``requested.json`` (what a partial download asked for, which the inventory reads too)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplesion.download.errors import LockedError
from deeplesion.download.files import RemoteFile
from deeplesion.io import replacing

log = logging.getLogger(__name__)


STATE_DIR = ".deeplesion"
REQUESTED_FILE = "requested.json"
LOCK_NAME = "download.lock"
VERIFIED_NAME = "verified.json"
EXTRACTED_DIR = "extracted"


@contextlib.contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """An exclusive lock file ``ROOT/.deeplesion/download.lock`` (a stale one, whose process is gone, is
    taken over)."""
    path = root / STATE_DIR / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            pid = int(path.read_text().strip() or "0") if path.exists() else 0
            if pid and _alive(pid):
                raise LockedError(
                    f"another download (process {pid}) is running in {root}; wait for it, or delete {path} "
                    "if that process is gone"
                ) from None
            log.warning("removing a stale lock %s (process %d is gone)", path, pid)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    else:
        raise LockedError(f"could not take the lock {path}")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def verified_state(root: Path) -> dict[str, Any]:
    path = root / STATE_DIR / VERIFIED_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def save_verified(root: Path, state: dict[str, Any], lock: threading.Lock) -> None:
    with lock, replacing(root / STATE_DIR / VERIFIED_NAME) as tmp:
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")


def record_path(root: Path, archive: str) -> Path:
    return root / STATE_DIR / EXTRACTED_DIR / f"{archive}.json"


def extraction_record(root: Path, archive: str) -> dict[str, Any] | None:
    """The completion record of an archive's extraction, or None."""
    path = record_path(root, archive)
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data if data.get("complete") else None


def write_requested(root: Path, archives: list[RemoteFile], parts: set[int] | None) -> None:
    """Tell the inventory which folders a partial download asked for (``requested.json``)."""
    path = root / STATE_DIR / REQUESTED_FILE
    if parts is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    folders: set[str] = set()
    previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    folders.update(previous.get("folders") or [])
    for archive in archives:
        record = extraction_record(root, archive.name)
        names = list(record["members"]) if record else []
        if not record and (root / archive.name).exists():
            with zipfile.ZipFile(root / archive.name) as z:
                names = z.namelist()
        folders.update(n.split("/")[1] for n in names if n.count("/") >= 2)
    data = {
        "folders": sorted(folders),
        "key_slices_only": False,
        "parts": sorted(set(previous.get("parts", [])) | parts),
    }
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")


@dataclass(frozen=True)
class Requested:
    """A partial download's request (absent file: everything was requested)."""

    folders: frozenset[str] | None = None
    key_slices_only: bool = False

    @classmethod
    def load(cls, root: Path) -> Requested:
        """Read ``ROOT/.deeplesion/requested.json`` if it exists."""
        path = root / STATE_DIR / REQUESTED_FILE
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        folders = data.get("folders")
        return cls(None if folders is None else frozenset(folders), bool(data.get("key_slices_only", False)))
