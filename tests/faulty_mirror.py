"""A loopback mirror that injects faults, shared by the download and slice-fetch tests.

``FaultyHandler.faults[name]`` is a list: each GET of ``name`` consumes the next entry (``500``, ``404``,
``429``, ``redirect``, ``html``, ``drop``: half the body then the connection closes, ``corrupt``: one
byte of the body flipped, ``norange``: the Range header ignored, anything else: served normally).
``head_faults`` does the same for HEAD requests; ``slow`` sleeps per 64 KiB sent.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import ClassVar

from deeplesion.download import Policy
from deeplesion.mirror import MirrorHandler

FAST = Policy(backoff=0.01, backoff_cap=0.05, timeout=10)


class FaultyHandler(MirrorHandler):
    """Serves the mirror, but each request for a file first consumes the next fault planned for it."""

    faults: ClassVar[dict[str, list[str]]] = defaultdict(list)
    head_faults: ClassVar[dict[str, list[str]]] = defaultdict(list)
    log: ClassVar[list[tuple[str, str | None]]] = []
    slow = 0.0

    def respond(self, *, send_body: bool) -> None:
        name = self.path.rsplit("/", 1)[-1]
        if self.command != "GET":  # size probes (HEAD): their own faults, else served normally
            fault = self.head_faults[name].pop(0) if self.head_faults.get(name) else None
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
            elif fault:
                self.send_response(int(fault))
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                super().respond(send_body=send_body)
            return
        type(self).log.append((name, self.headers.get("Range")))
        fault = self.faults[name].pop(0) if self.faults.get(name) else None
        if fault in ("500", "404"):
            self.send_error(int(fault))
        elif fault == "429":
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif fault == "redirect":
            self.send_response(302)
            self.send_header("Location", f"/{name}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif fault == "html":
            body = b"<html><body>Please log in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.fault = fault
            if fault == "norange":
                del self.headers["Range"]
            super().respond(send_body=send_body)

    def send_bytes(self, path: Path, start: int, end: int) -> None:
        fault = getattr(self, "fault", None)
        data = path.read_bytes()[start : end + 1]
        if fault == "drop":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault == "corrupt":
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        for i in range(0, len(data), 1 << 16):
            if self.slow:
                time.sleep(self.slow)
            self.wfile.write(data[i : i + (1 << 16)])
