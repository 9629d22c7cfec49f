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
from dataclasses import dataclass, field
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


def _read_requested(root: Path) -> dict[str, Any] | None:
    path = root / STATE_DIR / REQUESTED_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_requested_data(root: Path, data: dict[str, Any]) -> None:
    with replacing(root / STATE_DIR / REQUESTED_FILE) as tmp:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")


def write_requested(root: Path, archives: list[RemoteFile], parts: set[int] | None) -> None:
    """Tell the inventory which folders a partial download asked for (``requested.json``); folders of
    whole archives are requested whole, even where a slice fetch asked for some of their slices before."""
    path = root / STATE_DIR / REQUESTED_FILE
    if parts is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    folders: set[str] = set()
    previous = _read_requested(root) or {}
    folders.update(previous.get("folders") or [])
    whole: set[str] = set()
    for archive in archives:
        record = extraction_record(root, archive.name)
        names = list(record["members"]) if record else []
        if not record and (root / archive.name).exists():
            with zipfile.ZipFile(root / archive.name) as z:
                names = z.namelist()
        whole.update(n.split("/")[1] for n in names if n.count("/") >= 2)
    folders |= whole
    data: dict[str, Any] = {
        "folders": sorted(folders),
        "key_slices_only": False,
        "parts": sorted(set(previous.get("parts", [])) | parts),
    }
    slices = {f: r for f, r in (previous.get("slices") or {}).items() if f not in whole}
    if slices:
        data["slices"] = slices
    _write_requested_data(root, data)


def request_slices(root: Path, slices: dict[str, list[tuple[int, int]]]) -> None:
    """Add slice ranges to ``requested.json`` (a slice fetch): per folder, the union with what was asked
    before; a folder requested whole (by a download of its archive) stays whole.

    Nothing is written when the folder already holds a release downloaded whole (no ``requested.json``
    and an ``Images_png`` folder with series in it): everything is requested there already.
    """
    from deeplesion.names import IMAGES_DIR
    from deeplesion.slices import contiguous_runs

    previous = _read_requested(root)
    images = root / IMAGES_DIR
    if previous is None and images.is_dir() and any(images.iterdir()):
        return
    previous = previous or {"folders": [], "key_slices_only": False}
    folders = set(previous.get("folders") or [])
    asked = previous.get("slices") or {}
    merged: dict[str, list[list[int]]] = {}
    for folder in sorted(set(asked) | set(slices)):
        if folder in folders and folder not in asked:  # requested whole before
            continue
        numbers = {n for first, last in asked.get(folder, []) for n in range(first, last + 1)}
        numbers.update(n for first, last in slices.get(folder, []) for n in range(first, last + 1))
        merged[folder] = [[first, last] for first, last in contiguous_runs(numbers)]
    data = dict(previous)
    data["folders"] = sorted(folders | set(slices))
    data["slices"] = merged
    _write_requested_data(root, data)


@dataclass(frozen=True)
class Requested:
    """A partial download's request (absent file: everything was requested).

    Attributes
    ----------
    folders
        Series folders asked for (None: all).
    key_slices_only
        Only the key slices were asked for (an older form of request).
    slices
        Per folder asked for in part, the slice-number ranges asked for (inclusive); folders not in it
        were asked for whole.
    """

    folders: frozenset[str] | None = None
    key_slices_only: bool = False
    slices: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Requested:
        """Read ``ROOT/.deeplesion/requested.json`` if it exists."""
        data = _read_requested(root)
        if data is None:
            return cls()
        folders = data.get("folders")
        slices = {
            folder: tuple((int(first), int(last)) for first, last in ranges)
            for folder, ranges in (data.get("slices") or {}).items()
        }
        return cls(
            None if folders is None else frozenset(folders), bool(data.get("key_slices_only", False)), slices
        )

    def slice_ranges(self, folder: str) -> tuple[tuple[int, int], ...] | None:
        """The ranges asked for in ``folder``, or None when the folder was asked for whole."""
        return self.slices.get(folder)
