"""Entry point: ``deeplesion [--version] [-v|-q] COMMAND ...``.

Subcommand modules are imported here only to register their commands; each keeps its heavy imports
(numpy, OpenCV, matplotlib) inside the command function so that ``deeplesion --help`` answers at once.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated

import typer

from deeplesion import __version__

app = typer.Typer(
    name="deeplesion",
    help="Get, read, check, convert, view and score the NIH DeepLesion CT dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"deeplesion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv: debug).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
) -> None:
    """Configure logging (to stderr) for every command."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True
    )


def _register() -> None:
    from deeplesion.cli import (
        cache_commands,
        catalog_commands,
        data_commands,
        demo_command,
        detect_commands,
        evaluate_command,
        export_commands,
        synth_command,
        track_command,
        view_command,
        viz_commands,
    )

    catalog_commands.register(app)
    data_commands.register(app)
    export_commands.register(app)
    cache_commands.register(app)
    viz_commands.register(app)
    synth_command.register(app)
    evaluate_command.register(app)
    detect_commands.register(app)
    track_command.register(app)
    view_command.register(app)
    demo_command.register(app)


_register()


def _interrupt_on_sigterm() -> None:
    """Treat SIGTERM (``kill``, a job scheduler's time limit) as Ctrl-C: the command stops the same way,
    with its workers ended, its staged outputs removed and exit status 130. By default SIGTERM ends Python
    without unwinding, which left a killed ``synth`` behind as a hidden ``.NAME.*.part`` folder of up to
    gigabytes beside the release it was writing."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    """Run the command line (the ``deeplesion`` console script)."""
    _interrupt_on_sigterm()
    app()


if __name__ == "__main__":
    main()
