"""Zip archives on a web server, read without downloading them: HTTP range requests behind a seekable file.

The standard library's :mod:`zipfile` does all the zip work (the end records, ZIP64, the central
directory, local headers, decompression, CRC-32); this module only hands it a file object whose bytes
come from ``Range`` requests (:class:`RangeFile`), and keeps each archive's central directory as the
index (:class:`ArchiveIndex`, under ``ROOT/.deeplesion/index/``) so that reruns read it from disk.

Every range request goes through :func:`~deeplesion.download.http.request` (the retry policy) and is
checked: a ``206`` for exactly the bytes asked, from the archive of the size and ``ETag`` first seen.
A server that answers ``200`` (no Range support) or an archive that changed on the server is a clear
error, not a silent whole-archive transfer or a mix of two archives.
"""

from __future__ import annotations

import bisect
import io
import json
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deeplesion.download.errors import DownloadError
from deeplesion.download.http import Policy, request
from deeplesion.download.state import STATE_DIR
from deeplesion.io import replacing

INDEX_DIR = "index"
INDEX_FORMAT = 1
TAIL_PREFETCH = (1 << 16) + 1024
"""Bytes read from an archive's end in the first request: the end records (22 bytes, the ZIP64 ones 76
more) and a comment of up to 64 KiB, and for small archives the whole central directory too."""


class RangeNotSupportedError(DownloadError):
    """The server sends whole files even when asked for a byte range."""


class ArchiveChangedError(DownloadError):
    """The archive on the server is not the one indexed or being read (its size or ETag changed)."""


@dataclass(frozen=True)
class RemoteIdentity:
    """What identifies one version of a remote file: its size (bytes) and ``ETag`` (None: not sent)."""

    size: int
    etag: str | None


def ranged_get(
    client: Any,
    url: str,
    start: int,
    end: int,
    *,
    name: str,
    identity: RemoteIdentity | None = None,
    policy: Policy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bytes, RemoteIdentity]:
    """Bytes ``start`` to ``end`` (exclusive) of ``url``, under the retry policy.

    Parameters
    ----------
    name
        The archive's name, for messages.
    identity
        The version expected (None: any; the probe of a new archive).

    Returns
    -------
    bytes, RemoteIdentity
        Exactly ``end - start`` bytes, and the version they came from.

    Raises
    ------
    RangeNotSupportedError
        The server answered with the whole file (status 200).
    ArchiveChangedError
        The size or ETag differ from ``identity``, or the range is past the file's end (it shrank).
    DownloadError
        Any other status, or a partial answer for other bytes than asked.
    """
    seen: dict[str, RemoteIdentity] = {}

    def accept(response: Any) -> None:
        status = response.status_code
        if status == 200:
            raise RangeNotSupportedError(
                f"{name}: {response.url.host} ignores HTTP Range requests, so single members cannot be "
                "fetched; download whole archives instead (`deeplesion download --parts N`)"
            )
        if status == 416:
            raise ArchiveChangedError(
                f"{name}: bytes {start}-{end - 1} are past the end of the file on the server: the archive "
                f"changed; rerun to index it again"
            )
        if status != 206:
            raise DownloadError(f"{name}: HTTP {status} from {response.url} for a byte range")
        first, last, total = _content_range(response.headers.get("Content-Range"), name)
        if (first, last) != (start, end - 1):
            raise DownloadError(f"{name}: asked for bytes {start}-{end - 1}, the server sent {first}-{last}")
        etag = response.headers.get("ETag")
        found = RemoteIdentity(total, etag)
        if identity is not None and (
            total != identity.size or (identity.etag and etag and etag != identity.etag)
        ):
            raise ArchiveChangedError(
                f"{name}: the archive changed on the server (was {identity.size} bytes, ETag "
                f"{identity.etag}; now {total} bytes, ETag {etag}); rerun to index it again"
            )
        seen["identity"] = found

    response = request(
        client,
        "GET",
        url,
        headers={"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"},
        accept=accept,
        policy=policy,
        sleep=sleep,
    )
    data = response.content  # `accept` saw the answer: a 206 for exactly these bytes of this version
    if len(data) != end - start:
        raise DownloadError(f"{name}: asked for {end - start} bytes at {start}, received {len(data)}")
    return data, seen["identity"]


def _content_range(header: str | None, name: str) -> tuple[int, int, int]:
    """``bytes first-last/total`` -> (first, last, total)."""
    try:
        assert header is not None and header.startswith("bytes ")
        span, _, total = header[6:].partition("/")
        first, _, last = span.partition("-")
        return int(first), int(last), int(total)
    except (AssertionError, ValueError):
        raise DownloadError(f"{name}: a partial answer with an unusable Content-Range {header!r}") from None


class RangeFile(io.RawIOBase):
    """A read-only, seekable file of ``size`` bytes assembled from byte segments.

    Reads are served from the segments added with :meth:`add`; a read of bytes not held calls ``fetch``
    (when given) for them and keeps the answer, so :mod:`zipfile` can read a remote archive. Without
    ``fetch`` such a read is a programming error (the caller fetches first). Thread-safe.

    Parameters
    ----------
    size
        The file's size, bytes.
    fetch
        ``fetch(start, end) -> bytes`` for bytes ``start`` to ``end`` (exclusive).
    block
        Least bytes fetched per miss (reads of a few bytes become one larger request).
    """

    def __init__(self, size: int, fetch: Callable[[int, int], bytes] | None = None, *, block: int = 1 << 16):
        super().__init__()
        self.size = size
        self.fetch = fetch
        self.block = block
        self.position = 0
        self.transferred = 0
        self.requests = 0
        self._starts: list[int] = []
        self._data: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def add(self, start: int, data: bytes) -> None:
        """Hold ``data`` as the bytes from ``start``."""
        with self._lock:
            if start not in self._data:
                bisect.insort(self._starts, start)
            self._data[start] = data

    def discard(self, start: int) -> None:
        """Forget the segment added at ``start``."""
        with self._lock:
            if self._data.pop(start, None) is not None:
                self._starts.remove(start)

    def bytes_at(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive), fetching what is not held."""
        out = bytearray()
        while start < end:
            piece = self._held(start, end)
            if piece is None:
                if self.fetch is None:
                    raise RuntimeError(f"bytes {start}-{end - 1} were not fetched before they were read")
                stop = min(self.size, max(end, start + self.block), self._next_start(start))
                piece = self.fetch(start, stop)
                self.transferred += len(piece)
                self.requests += 1
                self.add(start, piece)
                piece = piece[: end - start]
            out += piece
            start += len(piece)
        return bytes(out)

    def _held(self, start: int, end: int) -> bytes | None:
        with self._lock:
            i = bisect.bisect_right(self._starts, start) - 1
            if i < 0:
                return None
            first = self._starts[i]
            data = self._data[first]
            if start >= first + len(data):
                return None
            return data[start - first : end - first]

    def _next_start(self, start: int) -> int:
        with self._lock:
            i = bisect.bisect_right(self._starts, start)
            return self._starts[i] if i < len(self._starts) else self.size

    # the io.RawIOBase protocol that zipfile uses
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start of the file")
        self.position = base + offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self.position + len(view), self.size)
        if end <= self.position:
            return 0
        data = self.bytes_at(self.position, end)
        view[: len(data)] = data
        self.position += len(data)
        return len(data)


@dataclass(frozen=True)
class MemberSpan:
    """Where one member lies in its archive: from its local header to the next member (or the central
    directory), so its data descriptor, if any, comes along."""

    archive: str
    name: str
    start: int
    end: int
    compressed: int
    size: int
    crc: int


class ArchiveIndex:
    """One archive's central directory (the bytes from its start to the end of the file), parsed by
    :mod:`zipfile`; and the members' byte spans.

    Attributes
    ----------
    archive, url
        The archive's name and where it was read.
    identity
        Size and ETag of the version indexed.
    tail_offset
        Where the central directory starts, bytes.
    file
        The :class:`RangeFile` that :attr:`zip` reads: the tail, plus the member bytes being extracted.
    """

    def __init__(self, archive: str, url: str, identity: RemoteIdentity, tail_offset: int, tail: bytes):
        self.archive = archive
        self.url = url
        self.identity = identity
        self.tail_offset = tail_offset
        self.tail = tail
        self.file = RangeFile(identity.size)
        self.file.add(tail_offset, tail)
        try:
            self.zip = zipfile.ZipFile(self.file)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DownloadError(f"{archive}: not a readable zip archive ({exc})") from None
        members = sorted(
            (info for info in self.zip.infolist() if not info.is_dir()), key=lambda i: i.header_offset
        )
        bounds = [i.header_offset for i in members[1:]] + [self.zip.start_dir]
        self.spans = {
            info.filename: MemberSpan(
                archive, info.filename, info.header_offset, end, info.compress_size, info.file_size, info.CRC
            )
            for info, end in zip(members, bounds, strict=True)
        }

    @classmethod
    def read_remote(
        cls,
        client: Any,
        archive: str,
        url: str,
        *,
        identity: RemoteIdentity | None = None,
        policy: Policy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[ArchiveIndex, int]:
        """Read the central directory over HTTP; returns the index and the bytes transferred."""
        probed = identity is None
        if identity is None:
            identity = probe(client, archive, url, policy=policy, sleep=sleep)

        def fetch(start: int, end: int) -> bytes:
            return ranged_get(
                client, url, start, end, name=archive, identity=identity, policy=policy, sleep=sleep
            )[0]

        remote = RangeFile(identity.size, fetch)
        tail_start = max(identity.size - TAIL_PREFETCH, 0)
        remote.bytes_at(tail_start, identity.size)  # one request for the end records (and small directories)
        try:
            with zipfile.ZipFile(remote) as z:
                start_dir = z.start_dir
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{archive}: not a zip archive on the server ({exc})") from None
        tail = remote.bytes_at(start_dir, identity.size)
        return cls(archive, url, identity, start_dir, tail), remote.transferred + int(probed)

    # persistence: ROOT/.deeplesion/index/<archive>.json and <archive>.cd
    @staticmethod
    def paths(root: Path, archive: str) -> tuple[Path, Path]:
        folder = root / STATE_DIR / INDEX_DIR
        return folder / f"{archive}.json", folder / f"{archive}.cd"

    def save(self, root: Path) -> None:
        """Write the index (the raw central directory first, then the JSON that makes it valid)."""
        meta_path, tail_path = self.paths(root, self.archive)
        with replacing(tail_path) as tmp:
            tmp.write_bytes(self.tail)
        meta = {
            "format": INDEX_FORMAT,
            "archive": self.archive,
            "url": self.url,
            "size": self.identity.size,
            "etag": self.identity.etag,
            "central_directory_offset": self.tail_offset,
            "central_directory_bytes": len(self.tail),
            "members": len(self.spans),
            "built": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with replacing(meta_path) as tmp:
            tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, root: Path, archive: str) -> ArchiveIndex | None:
        """The saved index, or None (absent, unreadable, or of another format: it is rebuilt)."""
        meta_path, tail_path = cls.paths(root, archive)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            tail = tail_path.read_bytes()
            if meta.get("format") != INDEX_FORMAT or len(tail) != meta["central_directory_bytes"]:
                return None
            identity = RemoteIdentity(int(meta["size"]), meta.get("etag"))
            return cls(archive, meta["url"], identity, int(meta["central_directory_offset"]), tail)
        except (OSError, ValueError, KeyError, TypeError, DownloadError):
            return None

    def read_members(
        self, spans: list[MemberSpan], data: bytes, data_start: int
    ) -> dict[str, bytes | zipfile.BadZipFile]:
        """The members' contents from fetched archive bytes (``data``, from ``data_start``), decompressed
        and CRC-checked by :mod:`zipfile`; a member that fails the check maps to its error."""
        self.file.add(data_start, data)
        out: dict[str, bytes | zipfile.BadZipFile] = {}
        try:
            for span in spans:
                try:
                    with self.zip.open(span.name) as member:
                        out[span.name] = member.read()
                except zipfile.BadZipFile as exc:  # CRC mismatch or a local header that is not this member
                    out[span.name] = exc
        finally:
            self.file.discard(data_start)
        return out


def probe(
    client: Any,
    archive: str,
    url: str,
    *,
    policy: Policy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RemoteIdentity:
    """The archive's size and ETag, from a one-byte range request (which also proves Range support)."""
    return ranged_get(client, url, 0, 1, name=archive, policy=policy, sleep=sleep)[1]
