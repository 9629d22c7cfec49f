"""Safe extraction: every member checked to stay inside ``Images_png``, written atomically, recorded."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import zipfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from deeplesion.download.errors import DownloadCancelled, UnsafeArchiveError
from deeplesion.download.state import record_path
from deeplesion.io import replacing
from deeplesion.names import IMAGES_DIR

log = logging.getLogger(__name__)


def safe_member_path(root: Path, member: str) -> Path:
    """Where a member ``Images_png/<series>/<NNN>.png`` goes; refuses anything that would leave
    ``ROOT/Images_png``.

    Raises
    ------
    UnsafeArchiveError
        Absolute names, ``..`` components, or names outside ``Images_png/``.
    """
    pure = PurePosixPath(member.replace("\\", "/"))
    images = (root / IMAGES_DIR).resolve()
    target = (root / Path(*pure.parts)).resolve() if pure.parts else images
    if pure.is_absolute() or ".." in pure.parts or not target.is_relative_to(images) or target == images:
        raise UnsafeArchiveError(f"archive member {member!r} would be written outside {images}; refused")
    return target


def extract_archive(
    root: Path, archive_path: Path, *, chunk: int = 1 << 20, stop: threading.Event | None = None
) -> dict[str, int]:
    """Extract ``archive_path`` into ``root/Images_png`` atomically per member; record CRC-32s.

    Returns
    -------
    dict
        Member name -> CRC-32 (as the archive records it; zipfile checks it while reading).

    Raises
    ------
    UnsafeArchiveError
        A member would escape the target folder (nothing is extracted then).
    """
    with zipfile.ZipFile(archive_path) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        targets = [safe_member_path(root, info.filename) for info in members]  # all checked before writing
        crcs: dict[str, int] = {}
        for info, target in zip(members, targets, strict=True):
            if stop is not None and stop.is_set():  # no record is written: a rerun extracts it again
                raise DownloadCancelled(f"{archive_path.name}: extraction interrupted; rerun to finish it")
            with replacing(target) as tmp, archive.open(info) as source, tmp.open("wb") as sink:
                shutil.copyfileobj(source, sink, chunk)
            crcs[info.filename] = info.CRC
    record = {
        "archive": archive_path.name,
        "size": archive_path.stat().st_size,
        "complete": True,
        "extracted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "members": crcs,
    }
    with replacing(record_path(root, archive_path.name)) as tmp:
        tmp.write_text(json.dumps(record), encoding="utf-8")
    return crcs
