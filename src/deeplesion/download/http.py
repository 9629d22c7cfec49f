"""HTTP: one retry policy for every request (archives, the checksum list, size probes), resumable
verified transfers, and progress reporting."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from deeplesion.download.errors import ChecksumError, DownloadCancelled, DownloadError
from deeplesion.download.files import (
    ANNOTATIONS_NAME,
    CHECKSUMS_NAME,
    Checksum,
    RemoteFile,
    official_files,
    parse_checksums,
)
from deeplesion.errors import UsageError
from deeplesion.io import file_digest

log = logging.getLogger(__name__)


class Reporter(Protocol):
    """Receives progress (the CLI draws bars; the default logs)."""

    def start(self, name: str, total: int | None, done: int) -> None: ...
    def advance(self, name: str, nbytes: int) -> None: ...
    def finish(self, name: str, status: str) -> None: ...


class LogReporter:
    """Plain log lines (when stderr is not a terminal)."""

    def start(self, name: str, total: int | None, done: int) -> None:
        size = "unknown size" if total is None else f"{total / 1e6:.1f} MB"
        log.info("%s: %s (%s)", name, "resuming at %.1f MB" % (done / 1e6) if done else "starting", size)

    def advance(self, name: str, nbytes: int) -> None:
        pass

    def finish(self, name: str, status: str) -> None:
        log.info("%s: %s", name, status)


@dataclass
class Policy:
    """Retries and timeouts.

    Attributes
    ----------
    attempts
        Tries per file for connection errors, 5xx, 408 and 429.
    backoff
        First wait, seconds; doubles each retry up to ``backoff_cap``.
    retry_after_cap
        Longest ``Retry-After`` honoured, seconds.
    """

    attempts: int = 8
    backoff: float = 1.0
    backoff_cap: float = 30.0
    retry_after_cap: float = 300.0
    timeout: float = 60.0
    chunk: int = 1 << 20

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th failure (the server's ``Retry-After`` when given)."""
        wait = retry_after if retry_after is not None else self.backoff * 2 ** (failures - 1)
        return min(wait, self.backoff_cap if retry_after is None else self.retry_after_cap)


RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def request(
    client: Any,
    method: Literal["GET", "HEAD"],
    url: str,
    *,
    headers: dict[str, str] | None = None,
    accept: Callable[[Any], None] | None = None,
    policy: Policy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """One small HTTP request (a file list, a HEAD, a byte range) under the same retry policy as the
    archives.

    Connection errors (refused, dropped while reading the body, timeouts) and the statuses in
    :data:`RETRY_STATUS` are retried with back-off (honouring ``Retry-After``); the body is read
    inside the retry loop, so a connection dropped half-way is retried too.

    Parameters
    ----------
    headers
        Extra request headers (``Range``).
    accept
        Called with the response before its body is read; it raises to refuse the answer (a server
        that ignores ``Range`` would otherwise send a whole archive).

    Returns
    -------
    httpx.Response
        The final response, body read (any status not retried, for the caller to judge).

    Raises
    ------
    DownloadError
        Still failing after ``policy.attempts`` tries: one line naming the URL.
    """
    import httpx

    policy = policy or Policy()
    failures = 0
    while True:
        retry_after: float | None = None
        try:
            with client.stream(method, url, headers=headers) as response:
                if response.status_code not in RETRY_STATUS:
                    if accept is not None:
                        accept(response)
                    response.read()
                    return response
                reason = f"HTTP {response.status_code}"
                if response.status_code in (429, 503):
                    retry_after = _retry_after(response.headers.get("Retry-After"))
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
        failures += 1
        if failures >= policy.attempts:
            raise DownloadError(f"{url}: no answer after {failures} attempts ({reason})")
        wait = policy.delay(failures, retry_after)
        log.warning(
            "%s: %s; retrying in %.1f s (attempt %d of %d)", url, reason, wait, failures + 1, policy.attempts
        )
        sleep(wait)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)
    with contextlib.suppress(TypeError, ValueError):
        moment = email.utils.parsedate_to_datetime(value)
        return max((moment - datetime.now(UTC)).total_seconds(), 0.0)
    return None


def hash_algorithm(file: RemoteFile, checksum: Checksum) -> Literal["md5", "sha256"] | None:
    """The hash to check ``file`` with: the requested one when known, else the other known one, else None
    (size only)."""
    if checksum == "size":
        return None
    if checksum == "sha256" and file.sha256:
        return "sha256"
    return "md5" if file.md5 else ("sha256" if file.sha256 else None)


@dataclass
class FetchResult:
    """What happened to one file."""

    name: str
    path: Path
    status: str  # downloaded | resumed | present
    transferred: int = 0
    checked: str = "size"


def fetch(
    client: Any,
    file: RemoteFile,
    directory: Path,
    *,
    checksum: Checksum = "md5",
    policy: Policy | None = None,
    reporter: Reporter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> FetchResult:
    """Download one file into ``directory`` (resuming a ``.part``), verify it, rename it into place.

    Parameters
    ----------
    client
        An ``httpx.Client`` (following redirects).
    file
        What to fetch and how to check it.
    checksum
        ``md5``, ``sha256`` or ``size``.

    Raises
    ------
    DownloadError
        After the retries, on a 4xx other than 408/429, on an HTML page, or a size that is not the
        expected one.
    ChecksumError
        The hash differs twice (the part file is deleted each time).
    """
    policy = policy or Policy()
    reporter = reporter or LogReporter()
    target = directory / file.name
    part = directory / f"{file.name}.part"
    for round_ in (1, 2):
        transferred, resumed = _transfer(client, file, part, policy, reporter, sleep, stop)
        algorithm = hash_algorithm(file, checksum)
        found = file_digest(part, algorithm) if algorithm else None
        expected = getattr(file, algorithm) if algorithm else None
        size = part.stat().st_size
        if file.size is not None and size != file.size:
            part.unlink()
            raise DownloadError(
                f"{file.name}: {size} bytes received, the file list says {file.size}; part deleted"
            )
        if algorithm is None or found == expected:
            os.replace(part, target)
            checked = algorithm or "size"
            reporter.finish(file.name, f"verified ({checked})")
            return FetchResult(
                file.name, target, "resumed" if resumed else "downloaded", transferred, checked
            )
        part.unlink()
        message = (
            f"{file.name}: {algorithm.upper()} expected {expected}, found {found}; the part file was deleted"
        )
        if round_ == 2:
            raise ChecksumError(message + " (twice: the server or the network corrupts this file)")
        log.warning("%s; downloading it again", message)
    raise AssertionError("unreachable")


def _transfer(
    client: Any,
    file: RemoteFile,
    part: Path,
    policy: Policy,
    reporter: Reporter,
    sleep: Callable[[float], None],
    stop: threading.Event | None = None,
) -> tuple[int, bool]:
    """Bring ``part`` to the full file; returns (bytes transferred now, whether it resumed)."""
    import httpx

    transferred = 0
    resumed = False
    failures = 0
    started = False
    while True:
        have = part.stat().st_size if part.exists() else 0
        if file.size is not None and have > file.size:
            part.unlink()
            have = 0
        if file.size is not None and have == file.size:
            return transferred, resumed
        if not started:
            reporter.start(file.name, file.size, have)
            started = True
        headers = {"Range": f"bytes={have}-"} if have else {}
        wait: float | None = None
        try:
            with client.stream("GET", file.url, headers=headers) as response:
                status = response.status_code
                if status in RETRY_STATUS:
                    wait = _retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
                    raise _Retryable(f"HTTP {status}")
                if status == 416 and have:
                    part.unlink()  # the server says our part is past its end: start again
                    continue
                if status >= 400:
                    raise DownloadError(
                        f"{file.name}: HTTP {status} from {response.url}; check the URL or `mirror`"
                    )
                if "text/html" in response.headers.get("Content-Type", "") and not file.name.endswith(
                    ".html"
                ):
                    raise DownloadError(
                        f"{file.name}: the server sent an HTML page (status {status}) instead of the file: "
                        "a login, quota or error page? Try again later or use another `mirror`"
                    )
                if have and status == 206:
                    total = _content_range(response.headers.get("Content-Range"), have, file)
                    if file.size is None and total is not None:
                        file = RemoteFile(file.name, file.url, total, file.md5, file.sha256)
                    mode = "ab"
                    resumed = True
                else:
                    if have:
                        log.info("%s: the server ignored the Range request; starting again", file.name)
                        reporter.start(file.name, file.size, 0)
                    mode = "wb"
                with part.open(mode) as handle:
                    for block in response.iter_bytes(policy.chunk):
                        if stop is not None and stop.is_set():
                            raise DownloadCancelled(
                                f"{file.name}: interrupted; {part} is kept, rerun to resume"
                            )
                        handle.write(block)
                        transferred += len(block)
                        reporter.advance(file.name, len(block))
            if file.size is None or part.stat().st_size >= file.size:
                return transferred, resumed
            raise _Retryable("the connection closed before the end of the file")
        except (_Retryable, httpx.TransportError) as exc:
            failures += 1
            if failures >= policy.attempts:
                raise DownloadError(
                    f"{file.name}: gave up after {failures} attempts ({exc}); rerun to resume"
                ) from None
            delay = policy.delay(failures, wait)
            log.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                file.name,
                exc,
                delay,
                failures + 1,
                policy.attempts,
            )
            sleep(delay)
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise DownloadError(
                    f"{file.name}: the disk is full; {part} is kept, free some space and rerun to resume"
                ) from None
            raise


class _Retryable(Exception):
    pass


def _content_range(header: str | None, have: int, file: RemoteFile) -> int | None:
    """Check ``bytes start-end/total`` of a 206 answer; returns the total."""
    if not header or not header.startswith("bytes "):
        raise DownloadError(f"{file.name}: a partial answer without a Content-Range header")
    span, _, total_text = header[6:].partition("/")
    start = int(span.split("-")[0])
    if start != have:
        raise DownloadError(f"{file.name}: asked for bytes from {have}, the server sent from {start}")
    total = None if total_text == "*" else int(total_text)
    if file.size is not None and total is not None and total != file.size:
        raise DownloadError(
            f"{file.name}: the server's file has {total} bytes, the file list says {file.size}: it changed"
        )
    return total


def resolve_files(
    client: Any,
    mirror: str | None,
    checksum: Checksum,
    *,
    policy: Policy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[RemoteFile], list[str]]:
    """The files to get: the official list, or what the mirror's ``MD5_checksums.txt`` lists (fetched,
    and each file's size asked with HEAD, under the retry policy)."""
    if mirror is None:
        return official_files(), []
    if checksum == "sha256":
        raise UsageError("`checksum='sha256'` cannot be used with a `mirror`: a mirror publishes MD5s only")
    base = mirror.rstrip("/")
    response = request(client, "GET", f"{base}/{CHECKSUMS_NAME}", policy=policy, sleep=sleep)
    if response.status_code != 200:
        raise DownloadError(
            f"{base}/{CHECKSUMS_NAME}: HTTP {response.status_code}; is {mirror} a release mirror?"
        )
    md5s = parse_checksums(response.text)
    files = [
        RemoteFile(name, f"{base}/{name}", _remote_size(client, f"{base}/{name}", policy, sleep), md5, None)
        for name, md5 in md5s.items()
    ]
    warnings = []
    if ANNOTATIONS_NAME not in md5s:
        warnings.append(
            f"{CHECKSUMS_NAME} of the mirror does not list {ANNOTATIONS_NAME}: checked by size only"
        )
        files.append(RemoteFile(ANNOTATIONS_NAME, f"{base}/{ANNOTATIONS_NAME}", None, None, None))
    files.append(RemoteFile(CHECKSUMS_NAME, f"{base}/{CHECKSUMS_NAME}", len(response.content), None, None))
    return files, warnings


def _remote_size(client: Any, url: str, policy: Policy | None, sleep: Callable[[float], None]) -> int | None:
    """Content-Length from a HEAD request (None when the server does not say, or does not do HEAD).

    Raises
    ------
    DownloadError
        The HEAD failed after the retries, or the server says the file is not there.
    """
    response = request(client, "HEAD", url, policy=policy, sleep=sleep)
    if response.status_code in (405, 501):  # no HEAD on this server: the size is checked after the GET
        return None
    if response.status_code != 200:
        raise DownloadError(f"{url}: HTTP {response.status_code} (the mirror's file list names this file)")
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None
