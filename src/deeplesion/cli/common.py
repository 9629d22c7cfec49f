"""What every subcommand shares: error handling, exit codes, output streams and common options."""

from __future__ import annotations

import enum
import functools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

EXIT_OK = 0
EXIT_DATA_ERRORS = 1
"""The command ran and failed: errors in the data, a download, verification, network or disk failure."""
EXIT_USAGE = 2
"""Wrong arguments or a missing input (typer's own usage errors use 2 as well); nothing else."""
EXIT_INTERRUPTED = 130

P = ParamSpec("P")
R = TypeVar("R")

AnnotationsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--annotations",
        "-a",
        help="DL_info.csv file(s) (plain or .gz); repeat to combine. Default: DL_info.csv under --root.",
        show_default=False,
    ),
]
RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Data root holding DL_info.csv and Images_png/ (default: $DEEPLESION_ROOT).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document to stdout (and nothing else there).")
]
ProgressOption = Annotated[
    bool | None, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
]
JobsOption = Annotated[int, typer.Option(min=1, help="Worker processes.")]
SchedulerOption = Annotated[str | None, typer.Option(help="Dask scheduler address to run on.")]


class PredictionFormat(enum.StrEnum):
    """A predictions file: the evaluation's CSV (``File_name,x1,y1,x2,y2,score``) or COCO results."""

    CSV = "csv"
    COCO = "coco"


class FrameChoice(enum.StrEnum):
    """Pixel frame of written coordinates: the release's 1-based ``csv`` frame or the 0-based ``project``."""

    CSV = "csv"
    PROJECT = "project"


_PARAMETER = re.compile(r"`([a-z_]+)(?:=([^`]*))?`")


def cli_terms(message: str) -> str:
    """Say a library message in command-line terms: the library names its parameters in backquotes
    (`` `force=True` ``, `` `split='val'` ``, `` `root` ``), the command line has flags (``--force``,
    ``--split val``, ``--root``): one rule, so the library never needs to know about flags."""

    def flag(match: re.Match[str]) -> str:
        option = "--" + match.group(1).replace("_", "-")
        value = match.group(2)
        return option if value is None or value == "True" else f"{option} {value.strip(chr(39))}"

    return _PARAMETER.sub(flag, message)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``error: message`` (in command-line terms) to stderr and return the ``typer.Exit`` to raise."""
    print(f"error: {cli_terms(message)}", file=sys.stderr)
    return typer.Exit(code)


def os_error_message(exc: OSError) -> str:
    """One line for a failed file operation: the path, and what went wrong."""
    import errno

    where = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or str(exc)
    hint = {
        errno.EACCES: "check the folder's permissions or write elsewhere",
        errno.EROFS: "the file system is read-only; write elsewhere",
        errno.ENOSPC: "the disk is full; free space or write elsewhere",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
    }.get(exc.errno or 0)
    return f"{where}: {reason}" + (f" ({hint})" if hint else "")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the toolkit's own exceptions and failed file operations into a one-line message and an exit
    status (no traceback): 2 for usage errors only, 1 for every failure, 130 for Ctrl-C."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from deeplesion.errors import DataRootError, DeepLesionError, OutputExistsError, UsageError

        try:
            return func(*args, **kwargs)
        except (UsageError, DataRootError, OutputExistsError) as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except DeepLesionError as exc:
            raise fail(str(exc), EXIT_DATA_ERRORS) from None
        except OSError as exc:  # a read-only or full folder, a path through a file, ...
            raise fail(os_error_message(exc), EXIT_DATA_ERRORS) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None

    return wrapper


def print_json(document: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(document, indent=1, allow_nan=False) + "\n")


def stderr_console() -> Any:
    """A rich console on stderr (tables and progress when stdout is reserved for JSON)."""
    from rich.console import Console

    return Console(stderr=True)
