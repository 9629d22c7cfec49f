"""The release's files: the official list (package data), a mirror's ``MD5_checksums.txt``, archive
numbers."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from deeplesion.download.errors import DownloadError
from deeplesion.errors import UsageError

log = logging.getLogger(__name__)


Checksum = Literal["md5", "sha256", "size"]

CHECKSUMS_NAME = "MD5_checksums.txt"
ANNOTATIONS_NAME = "DL_info.csv"
ARCHIVE_PREFIX = "Images_png_"
TYPICAL_ARCHIVE_BYTES = 4_300_000_000


@dataclass(frozen=True)
class RemoteFile:
    """A file of the release: where it comes from and how to check it (None: unknown)."""

    name: str
    url: str
    size: int | None
    md5: str | None
    sha256: str | None

    @property
    def archive_number(self) -> int | None:
        """``7`` for ``Images_png_07.zip``; None for other files."""
        stem = self.name.removeprefix(ARCHIVE_PREFIX).removesuffix(".zip")
        if self.name.startswith(ARCHIVE_PREFIX) and self.name.endswith(".zip") and stem.isdigit():
            return int(stem)
        return None


def official_files() -> list[RemoteFile]:
    """The release's files from the packaged ``release_files.tsv`` (56 archives, MD5 list, DL_info.csv)."""
    text = resources.files("deeplesion.resources").joinpath("release_files.tsv").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    header = lines[0].split("\t")
    out = []
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        out.append(
            RemoteFile(
                row["name"],
                row["url"],
                int(row["bytes"]) if row["bytes"] else None,
                row["md5"] or None,
                row["sha256"] or None,
            )
        )
    return out


def parse_checksums(text: str) -> dict[str, str]:
    """``<md5>  <name>`` lines (``MD5_checksums.txt``) -> {name: md5}."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition("  ")
        if len(digest) != 32 or not name:
            raise DownloadError(f"{CHECKSUMS_NAME} line {number}: expected '<md5>  <name>', found {line!r}")
        out[name.strip().lstrip("*")] = digest.lower()
    return out


def parse_parts(text: str | None) -> set[int] | None:
    """``"1-3,7"`` -> {1, 2, 3, 7}; None or empty -> None (every part)."""
    if not text:
        return None
    parts: set[int] = set()
    for piece in text.split(","):
        first, dash, last = piece.strip().partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise UsageError(f"`parts={text!r}`: use numbers and ranges like 1-3,7") from None
        if low < 1 or high < low:
            raise UsageError(f"`parts={text!r}`: {piece.strip()} is not a valid part range")
        parts.update(range(low, high + 1))
    return parts


def human_bytes(n: float) -> str:
    """``1234567`` -> ``1.2 MB``."""
    units = ["B", "KB", "MB", "GB", "TB"]
    power = min(int(math.log(max(n, 1), 1000)), len(units) - 1)
    return f"{n / 1000**power:.1f} {units[power]}" if power else f"{int(n)} B"
