"""``deeplesion show``, ``render``, ``bodymap`` and ``report``: looking at the data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from deeplesion.cli.common import (
    EXIT_DATA_ERRORS,
    AnnotationsOption,
    JobsOption,
    ProgressOption,
    RootOption,
    handle_errors,
)


@handle_errors
def show(
    file_name: Annotated[str | None, typer.Argument(help="Key slice, like 000001_01_01_109.png.")] = None,
    row: Annotated[int | None, typer.Option(help="Or the 0-based row of the annotation file.")] = None,
    root: RootOption = None,
    annotations: Annotated[
        Path | None, typer.Option("--annotations", "-a", help="Default: ROOT/DL_info.csv.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="PNG to write (default: <File_name> in this folder).")
    ] = None,
    window: Annotated[
        str, typer.Option(help="dicom (the lesion's own), soft-tissue, lung, bone, or LOW,HIGH.")
    ] = "dicom",
    context: Annotated[bool, typer.Option("--context", help="Add a strip of neighbouring slices.")] = False,
) -> None:
    """Draw a key slice with the RECIST axes, box and a caption for every lesion on it."""
    from deeplesion.errors import UsageError
    from deeplesion.release import open_release
    from deeplesion.viz import key_slice_figure, write_png

    release = open_release(root, annotations=annotations)
    if (file_name is None) == (row is None):
        raise UsageError("give a key-slice FILE_NAME or --row N (one of them)")
    if row is not None:
        if not 0 <= row < len(release.catalog):
            raise UsageError(f"--row {row}: the annotation file has rows 0-{len(release.catalog) - 1}")
        file_name = release.catalog[row].file_name
    assert file_name is not None
    chosen = (
        window
        if window.lower() == "dicom" or "," not in window
        else tuple(float(v) for v in window.split(","))
    )
    rgb = key_slice_figure(release, file_name, window=chosen, context=context)
    target = out or Path.cwd() / file_name
    write_png(target, rgb)
    print(target)


@handle_errors
def render(
    root: Annotated[Path, typer.Option(help="The release folder (DL_info.csv and Images_png/).")],
    out: Annotated[Path, typer.Option(help="Folder for one PNG per key slice.")],
    annotations: Annotated[
        Path | None, typer.Option("--annotations", "-a", help="Default: ROOT/DL_info.csv.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Only this split.")] = None,
    jobs: JobsOption = 1,
    force: Annotated[bool, typer.Option("--force", help="Redraw images that exist.")] = False,
    progress: ProgressOption = None,
) -> None:
    """One overlay image per key slice with all its lesions (as the release's Key_slices.zip); resumable."""
    from deeplesion.cli.progress import progress_bar
    from deeplesion.viz import render_key_slices

    with progress_bar("rendering key slices", progress) as update:
        result = render_key_slices(
            root,
            annotations or root / "DL_info.csv",
            out,
            split=split,
            jobs=jobs,
            force=force,
            progress=update,
        )
    print(f"{out}: {result.written} written, {result.skipped} already there, {len(result.failed)} failed")
    for message in result.failed[:20]:
        print(f"  {message}", file=sys.stderr)
    if result.failed:
        raise typer.Exit(EXIT_DATA_ERRORS)


@handle_errors
def bodymap(
    out: Annotated[Path, typer.Option(help="PNG (or PDF/SVG) to write.")],
    annotations: AnnotationsOption = None,
    root: RootOption = None,
    split: Annotated[list[str] | None, typer.Option(help="Only these splits; repeat for several.")] = None,
) -> None:
    """The body map: lesion positions (normalized x, z) coloured by type, head at the top."""
    from deeplesion.catalog import load_catalog
    from deeplesion.io import atomic_write_bytes
    from deeplesion.viz import figure_png, plot_bodymap

    catalog = load_catalog(annotations or None, root=root)
    if split:
        catalog = catalog.filter(split=split)
    ax = plot_bodymap(catalog)
    image = figure_png(ax, image_format=out.suffix.lstrip(".") or "png", dpi=200)
    atomic_write_bytes(out, image, force=True)
    print(out)


@handle_errors
def report(
    out: Annotated[Path, typer.Option(help="The HTML file to write.")],
    annotations: AnnotationsOption = None,
    root: RootOption = None,
) -> None:
    """One self-contained HTML report: tables, plots, body map and (with images) a gallery."""
    from deeplesion.catalog import load_catalog
    from deeplesion.report import write_report

    catalog = load_catalog(annotations or None, root=root)
    image_root = root if root is not None else (annotations[0].parent if annotations else None)
    write_report(out, catalog, root=image_root)
    print(out)


def register(app: typer.Typer) -> None:
    """Add the viewing commands to ``app``."""
    app.command()(show)
    app.command()(render)
    app.command()(bodymap)
    app.command()(report)
