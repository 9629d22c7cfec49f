"""``deeplesion serve-mirror``: serve a folder of release files over HTTP with Range support.

A lab can mirror the data for its machines, and the demo and the tests run the real download code
against it. Loopback (127.0.0.1) by default; the request loop stops by itself after ``max_seconds``.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """A single ``bytes=`` range -> (start, end inclusive); None: no (usable) range; ``"invalid"``: 416."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            length = int(last)
            return (max(size - length, 0), size - 1) if length > 0 and size > 0 else "invalid"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "invalid"
    return start, min(end, size - 1)


class MirrorHandler(BaseHTTPRequestHandler):
    """GET and HEAD of the files under the server's ``directory``, with single-range support."""

    server: MirrorServer._Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def resolve(self) -> Path | None:
        """The requested file, or None when it is absent or outside the served folder."""
        relative = unquote(urlsplit(self.path).path).lstrip("/")
        base = self.server.directory
        candidate = (base / relative).resolve()
        if not relative or not candidate.is_relative_to(base) or not candidate.is_file():
            return None
        return candidate

    def do_HEAD(self) -> None:
        self.respond(send_body=False)

    def do_GET(self) -> None:
        self.respond(send_body=True)

    def respond(self, *, send_body: bool) -> None:
        path = self.resolve()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND, "no such file")
            return
        stat = path.stat()
        size = stat.st_size
        wanted = parse_range(self.headers.get("Range"), size)
        if wanted == "invalid":
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = wanted if isinstance(wanted, tuple) else (0, size - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if isinstance(wanted, tuple) else HTTPStatus.OK)
        if isinstance(wanted, tuple):
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        # size and modification time, as common servers do: a replaced archive gets a new ETag
        self.send_header("ETag", f'"{size:x}-{stat.st_mtime_ns:x}"')
        self.send_header("Content-Type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(max(end - start + 1, 0)))
        self.end_headers()
        if send_body and size:
            self.send_bytes(path, start, end)

    def send_bytes(self, path: Path, start: int, end: int) -> None:
        """Write bytes ``start``-``end`` (inclusive) of ``path``; subclasses inject faults here."""
        with path.open("rb") as handle:
            handle.seek(start)
            remaining = end - start + 1
            try:
                while remaining > 0:
                    block = handle.read(min(CHUNK, remaining))
                    if not block:
                        break
                    self.wfile.write(block)
                    remaining -= len(block)
            except (BrokenPipeError, ConnectionResetError):
                log.debug("client closed the connection during %s", path.name)


class MirrorServer:
    """A threaded HTTP server for ``directory`` (loopback by default), started in a background thread.

    Parameters
    ----------
    directory
        The folder to serve.
    host, port
        Where to listen; port 0 picks a free port (see :attr:`url`).
    handler
        The request handler class (tests pass one that injects faults).
    """

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        directory: Path

    def __init__(
        self,
        directory: str | os.PathLike[str],
        host: str = "127.0.0.1",
        port: int = 0,
        handler: type[MirrorHandler] = MirrorHandler,
    ) -> None:
        self.httpd = self._Server((host, port), handler)
        self.httpd.directory = Path(directory).resolve()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, for example ``http://127.0.0.1:40123``."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> MirrorServer:
        """Serve in a background thread (until :meth:`stop`)."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_for(self, max_seconds: float | None) -> None:
        """Serve in this thread until ``max_seconds`` pass (None: until interrupted)."""
        self.start()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            self.stop()

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
