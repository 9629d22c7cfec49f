"""``deeplesion export nifti`` and ``deeplesion export coco``."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from deeplesion.cli.common import (
    EXIT_DATA_ERRORS,
    FrameChoice,
    JobsOption,
    JsonOption,
    ProgressOption,
    RootOption,
    SchedulerOption,
    handle_errors,
    print_json,
)

export_app = typer.Typer(help="Convert the release: NIfTI sub-volumes or COCO json.", no_args_is_help=True)


class LayoutChoice(enum.StrEnum):
    OFFICIAL = "official"
    WORLD = "world"


class CategoryChoice(enum.StrEnum):
    LESION = "lesion"
    TYPE = "type"


@export_app.command("nifti")
@handle_errors
def export_nifti_command(
    root: RootOption = None,
    annotations: Annotated[
        Path | None, typer.Option("--annotations", "-a", help="Default: ROOT/DL_info.csv.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default ROOT/Images_nifti[_world]).")
    ] = None,
    layout: Annotated[
        LayoutChoice, typer.Option(help="official (zero origin) or world (runs placed in z).")
    ] = LayoutChoice.OFFICIAL,
    split: Annotated[str | None, typer.Option(help="Only the series of this split.")] = None,
    series: Annotated[
        list[str] | None, typer.Option(help="Only this series folder; repeat for several.")
    ] = None,
    jobs: JobsOption = 1,
    scheduler: SchedulerOption = None,
    force: Annotated[bool, typer.Option("--force", help="Rewrite files that exist.")] = False,
    progress: ProgressOption = None,
    json: JsonOption = False,
) -> None:
    """One NIfTI file per contiguous run of each series, <series>_<first>-<last>.nii.gz, int16 HU."""
    from deeplesion.catalog import DEFAULT_FILE_NAME, load_catalog, resolve_root
    from deeplesion.cli.progress import progress_bar
    from deeplesion.nifti import export_nifti

    root_path = resolve_root(root)
    catalog = load_catalog(annotations or root_path / DEFAULT_FILE_NAME)
    with progress_bar("exporting series", progress) as update:
        summary = export_nifti(
            root_path,
            catalog,
            out=out,
            layout=layout.value,
            split=split,
            series=series,
            jobs=jobs,
            scheduler=scheduler,
            force=force,
            progress=update,
        )
    document = {
        "out": str(summary.out),
        "layout": summary.layout,
        "series": summary.series,
        "written": summary.written,
        "skipped_complete": summary.skipped,
        "conflicts": summary.conflicts,
        "failed": summary.failed,
        "not_requested": summary.not_requested,
        "slices": summary.slices,
        "bytes": summary.bytes,
        "warnings": summary.warnings,
    }
    if json:
        print_json(document)
    else:
        print(
            f"{summary.out}: {summary.written} file(s) written ({summary.slices} slices, "
            f"{summary.bytes / 1e6:.1f} MB), {summary.skipped} already complete, {len(summary.conflicts)} "
            f"conflict(s), {len(summary.failed)} failed, from {summary.series} series "
            f"({summary.layout} layout)"
        )
        for name in summary.conflicts[:20]:
            print(f"  exists with another layout or another tool's, left alone: {name} (--force replaces it)")
        for message in summary.failed:
            print(f"  not written: {message}")
        if summary.not_requested:
            print(f"  {len(summary.not_requested)} run(s) not written, as not requested (a partial release):")
        for message in summary.not_requested[:20]:
            print(f"    {message}")
    if summary.conflicts or summary.failed:
        raise typer.Exit(EXIT_DATA_ERRORS)


@export_app.command("coco")
@handle_errors
def export_coco_command(
    annotations: Annotated[Path, typer.Option("--annotations", "-a", help="DL_info.csv (or a split file).")],
    out: Annotated[Path, typer.Option(help="The COCO json to write.")],
    split: Annotated[str | None, typer.Option(help="Only this split (default: every row).")] = None,
    frame: Annotated[FrameChoice, typer.Option(help="Pixel frame of bbox and RECIST.")] = FrameChoice.PROJECT,
    categories: Annotated[
        CategoryChoice, typer.Option(help="One lesion category, or the 8 types.")
    ] = CategoryChoice.LESION,
    exclude_noisy: Annotated[
        bool, typer.Option("--exclude-noisy", help="Leave out possibly-noisy rows.")
    ] = False,
    images_dir: Annotated[
        Path | None, typer.Option(help="Also write 8-bit 3-slice PNGs of the key slices here.")
    ] = None,
    root: RootOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out (and existing PNGs).")] = False,
    json: JsonOption = False,
) -> None:
    """The key slices and lesions as COCO detection json (for mmdetection, detectron2, pycocotools)."""
    import json as jsonlib

    from deeplesion.catalog import load_catalog, resolve_root
    from deeplesion.coco import coco_document, write_key_slice_images
    from deeplesion.errors import OutputExistsError, UsageError
    from deeplesion.io import atomic_write_bytes
    from deeplesion.names import IMAGES_DIR

    # everything is checked before anything is written: a failed command leaves nothing behind
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; pass `force=True` to replace it")
    catalog = load_catalog(annotations)
    document = coco_document(
        catalog, split=split, frame=frame.value, categories=categories.value, exclude_noisy=exclude_noisy
    )
    source = None
    if images_dir is not None:
        source = resolve_root(root) if root is not None else annotations.resolve().parent
        if not (source / IMAGES_DIR).is_dir():
            raise UsageError(f"{source / IMAGES_DIR} does not exist: `root` must hold the release's images")
    images_written = 0
    if images_dir is not None and source is not None:
        rows = catalog.filter(split=split) if split else catalog
        if exclude_noisy:
            rows = rows.filter(noisy=False)
        images_written = write_key_slice_images(source, rows, images_dir, force=force)
    atomic_write_bytes(out, jsonlib.dumps(document).encode("utf-8"), force=force)
    summary = {
        "out": str(out),
        "images": len(document["images"]),
        "annotations": len(document["annotations"]),
        "categories": len(document["categories"]),
        "png_written": images_written,
    }
    if json:
        print_json(summary)
    else:
        print(
            f"wrote {out}: {summary['images']} images, {summary['annotations']} annotations, "
            f"{summary['categories']} categories"
            + (f"; {images_written} PNGs in {images_dir}" if images_dir else ""),
            file=sys.stdout,
        )


def register(app: typer.Typer) -> None:
    """Add ``export`` (with ``nifti`` and ``coco``) to ``app``."""
    app.add_typer(export_app, name="export")
