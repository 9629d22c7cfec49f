"""``deeplesion verify``: archives against the file list, extracted files against their CRC-32."""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Callable
from pathlib import Path

from deeplesion.download.files import CHECKSUMS_NAME, Checksum, RemoteFile, official_files, parse_checksums
from deeplesion.download.http import hash_algorithm
from deeplesion.download.partial import fetched_records
from deeplesion.download.state import EXTRACTED_DIR, STATE_DIR, extraction_record
from deeplesion.findings import Finding, make_finding
from deeplesion.io import file_digest

log = logging.getLogger(__name__)


def verify_release(
    root: str | os.PathLike[str],
    *,
    checksum: Checksum = "md5",
    progress: Callable[[int, int], None] | None = None,
) -> list[Finding]:
    """Archives against the file list, and extracted files against their recorded CRC-32.

    The file list is ``ROOT/MD5_checksums.txt`` when present (a mirror or synthetic release), else the
    official list. Returns findings with the archive codes of ``docs/findings.md``.
    """
    root_path = Path(root)
    listed = root_path / CHECKSUMS_NAME
    if listed.is_file():
        md5s = parse_checksums(listed.read_text(encoding="utf-8"))
        official = {f.name: f for f in official_files()}
        # an official archive keeps its size and SHA-256; anything else (a mirror's own files) has its MD5
        files = [
            official[n] if n in official and official[n].md5 == md5 else RemoteFile(n, "", None, md5, None)
            for n, md5 in md5s.items()
        ]
    else:
        files = official_files()
    findings: list[Finding] = []
    records = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((root_path / STATE_DIR / EXTRACTED_DIR).glob("*.json"))
    ]
    fetched = fetched_records(root_path)  # members fetched alone by a slice fetch (their archive is absent)
    records += [{"archive": archive, "members": members} for archive, members in fetched.items()]
    work = len(files) + len(records)
    done = 0
    for file in files:
        path = root_path / file.name
        done += 1
        if not path.exists():
            if (
                file.archive_number is not None
                and extraction_record(root_path, file.name) is None
                and file.name not in fetched
                and not fetched  # a slice fetch asked for some members, not for every archive
            ):
                findings.append(
                    make_finding(
                        "archive-missing", f"{file.name}: not on disk and not extracted", file=file.name
                    )
                )
        else:
            findings.extend(_verify_file(path, file, checksum))
        if progress:
            progress(done, work)
    for record in records:
        how = "fetched from" if record["archive"] in fetched else "extracted from"
        for member, crc in record.get("members", {}).items():
            target = root_path / member
            if not target.is_file():
                message = f"{member}: {how} {record['archive']}, no longer on disk"
                findings.append(make_finding("member-missing", message, file=member))
                continue
            found = 0
            with target.open("rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):  # type: ignore[misc]
                    found = zlib.crc32(block, found)
            if found != crc:
                message = f"{member}: CRC-32 {found:08x}, the archive recorded {crc:08x}"
                findings.append(
                    make_finding("member-crc-mismatch", message, file=member, value=f"{found:08x}")
                )
        done += 1
        if progress:
            progress(done, work)
    return findings


def _verify_file(path: Path, file: RemoteFile, checksum: Checksum) -> list[Finding]:
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        return [
            make_finding(
                "archive-size-mismatch",
                f"{file.name}: {size} bytes, the list says {file.size}",
                file=file.name,
                value=str(size),
            )
        ]
    algorithm = hash_algorithm(file, checksum)
    if algorithm is None:
        if checksum == "size" or file.name == CHECKSUMS_NAME:
            return []
        return [
            make_finding(
                "archive-unverified", f"{file.name}: no hash in the file list; size only", file=file.name
            )
        ]
    found = file_digest(path, algorithm)
    expected = getattr(file, algorithm)
    if found != expected:
        message = f"{file.name}: {algorithm.upper()} {found}, the list says {expected}"
        return [make_finding("archive-hash-mismatch", message, file=file.name, value=found)]
    return []
