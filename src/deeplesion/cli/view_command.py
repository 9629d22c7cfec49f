"""``deeplesion view``: the browser viewer, served on this machine."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated

import typer

from deeplesion.cli.common import RootOption, handle_errors

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@handle_errors
def view(
    root: RootOption = None,
    annotations: Annotated[
        Path | None,
        typer.Option("--annotations", "-a", help="DL_info.csv (or a split file). Default: under --root."),
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Detections to show: the evaluation's CSV (File_name,x1,y1,x2,y2,score)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps it on this machine.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8765,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
) -> None:
    """Browse lesions, scroll through their series, compare a patient's studies, see predictions."""
    import socket
    import sys
    import webbrowser

    from deeplesion.errors import UsageError
    from deeplesion.release import open_release

    try:
        import uvicorn

        from deeplesion.view.app import create_app
        from deeplesion.view.service import Viewer
    except ImportError as exc:
        raise UsageError(
            f"the viewer needs the 'view' extra ({exc.name} is missing): pip install 'deeplesion[view]'"
        ) from None
    release = open_release(root, annotations=annotations)
    catalog = release.catalog  # read now: a broken file fails here, not on the first request
    loaded = None
    if predictions is not None:
        from deeplesion.evaluate.predictions import read_predictions_csv

        loaded = read_predictions_csv(predictions)
    app = create_app(Viewer(release, loaded))
    if not is_loopback(host):
        print(
            f"warning: listening on {host}: anyone who can reach this machine can read the images; the "
            "viewer has no login (use --host 127.0.0.1 and an SSH tunnel to share it)",
            file=sys.stderr,
        )
    # bind first, so that a port in use is a one-line error and --port 0 can say which port it got
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    print(
        f"serving {len(catalog)} lesions of {release.root} at {url} (Ctrl-C to stop)"
        + (f"; predictions: {predictions}" if predictions else ""),
        file=sys.stderr,
    )
    if open_browser:
        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    """Add ``view`` to ``app``."""
    app.command()(view)
