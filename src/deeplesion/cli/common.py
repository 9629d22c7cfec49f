"""What every subcommand shares: error handling, exit codes, output streams and common options."""

from __future__ import annotations

import enum
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

EXIT_OK = 0
EXIT_DATA_ERRORS = 1
"""The command ran and found errors in the data (or the data could not be read)."""
EXIT_USAGE = 2
"""Wrong arguments or a missing input (typer's own usage errors use 2 as well)."""

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


class FrameChoice(enum.StrEnum):
    """Pixel frame of written coordinates: the release's 1-based ``csv`` frame or the 0-based ``project``."""

    CSV = "csv"
    PROJECT = "project"


def fail(message: str, code: int) -> typer.Exit:
    """Print ``error: message`` to stderr and return the ``typer.Exit`` to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the toolkit's own exceptions into a one-line message and an exit status (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from deeplesion.errors import AnnotationError, DeepLesionError, ImageError, PredictionError

        try:
            return func(*args, **kwargs)
        except (AnnotationError, ImageError, PredictionError) as exc:
            raise fail(str(exc), EXIT_DATA_ERRORS) from None
        except DeepLesionError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


def print_json(document: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(document, indent=1, allow_nan=False) + "\n")


def stderr_console() -> Any:
    """A rich console on stderr (tables and progress when stdout is reserved for JSON)."""
    from rich.console import Console

    return Console(stderr=True)
