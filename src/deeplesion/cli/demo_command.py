"""``deeplesion demo``: run every capability once on the embedded default data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deeplesion.cli.common import handle_errors


@handle_errors
def demo(
    out: Annotated[Path | None, typer.Option(help="Keep the demo's outputs in this folder.")] = None,
    stage: Annotated[list[str] | None, typer.Option(help="Run only this stage; repeat for several.")] = None,
) -> None:
    """Run every capability once: the packaged real rows, then a synthetic release generated on the fly."""
    from deeplesion.demo import run_demo

    run_demo(out, only=stage)


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command()(demo)
