"""``deeplesion info``, ``lesions`` and ``validate``: read and check ``DL_info.csv``."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from deeplesion.cli.common import (
    EXIT_DATA_ERRORS,
    AnnotationsOption,
    FrameChoice,
    JsonOption,
    ProgressOption,
    RootOption,
    handle_errors,
    print_json,
)

if TYPE_CHECKING:
    from deeplesion.catalog import Catalog


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def _load(annotations: list[Path] | None, root: Path | None, strictness: str = "raise") -> Catalog:
    from deeplesion.catalog import load_catalog

    return load_catalog(annotations or None, root=root, strictness=strictness)


@handle_errors
def info(annotations: AnnotationsOption = None, root: RootOption = None, json: JsonOption = False) -> None:
    """Counts per split (with and without possibly-noisy rows), lesion types, sizes, intervals, ages."""
    from deeplesion.summary import format_summary, summarize

    summary = summarize(_load(annotations, root))
    if json:
        print_json(summary)
    else:
        print(format_summary(summary))


@handle_errors
def lesions(
    annotations: AnnotationsOption = None,
    root: RootOption = None,
    split: Annotated[str | None, typer.Option(help="train, val or test.")] = None,
    lesion_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help="Lesion type (bone, abdomen, mediastinum, liver, lung, kidney, "
            "soft_tissue, pelvis, unknown); repeat for several.",
        ),
    ] = None,
    patient: Annotated[list[int] | None, typer.Option(help="Patient index; repeat for several.")] = None,
    exclude_noisy: Annotated[bool, typer.Option("--exclude-noisy", help="Drop possibly-noisy rows.")] = False,
    min_diameter_mm: Annotated[float | None, typer.Option(help="Minimum long diameter, mm.")] = None,
    max_diameter_mm: Annotated[float | None, typer.Option(help="Maximum long diameter, mm.")] = None,
    min_interval_mm: Annotated[float | None, typer.Option(help="Minimum slice interval, mm.")] = None,
    max_interval_mm: Annotated[float | None, typer.Option(help="Maximum slice interval, mm.")] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.TABLE,
    frame: Annotated[
        FrameChoice,
        typer.Option(help="Pixel frame of --format csv: csv (the release's, 1-based) or project (0-based)."),
    ] = FrameChoice.CSV,
    limit: Annotated[
        int | None, typer.Option(help="Print at most this many rows (table: 50 by default).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
    force: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Print or write the lesions matching a query (JSON coordinates are 0-based, project frame)."""
    import json as jsonlib

    import numpy as np

    from deeplesion.catalog import dl_info_text
    from deeplesion.io import atomic_write_bytes

    catalog = _load(annotations, root).filter(
        split=split,
        lesion_type=lesion_type or None,
        patient=patient or None,
        noisy=False if exclude_noisy else None,
        min_long_diameter_mm=min_diameter_mm,
        max_long_diameter_mm=max_diameter_mm,
        min_slice_interval_mm=min_interval_mm,
        max_slice_interval_mm=max_interval_mm,
    )
    matched = len(catalog)
    if limit is None and output_format is OutputFormat.TABLE and out is None:
        limit = 50
    if limit is not None:
        catalog = catalog.take(np.arange(min(max(limit, 0), matched)))
    if output_format is OutputFormat.CSV:
        text = dl_info_text(catalog, frame=str(frame))
    elif output_format is OutputFormat.JSON:
        text = (
            jsonlib.dumps(
                {
                    "count": len(catalog),
                    "matched": matched,
                    "frame": "project",
                    "lesions": [lesion.to_dict() for lesion in catalog],
                },
                indent=1,
            )
            + "\n"
        )
    else:
        text = _table(catalog)
    if out is not None:
        atomic_write_bytes(out, text.encode("utf-8"), force=force)
        print(f"wrote {len(catalog)} lesions to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if len(catalog) < matched:
        print(f"showing {len(catalog)} of {matched} matching lesions (use --limit)", file=sys.stderr)


def _table(catalog: Catalog) -> str:
    header = (
        f"{'file_name':<24}{'split':<6}{'type':<12}{'long mm':>8}{'short mm':>9}{'interval':>9}"
        "  box (0-based)"
    )
    lines = [header]
    for lesion in catalog:
        box = ", ".join(f"{v:.1f}" for v in lesion.box)
        lines.append(
            f"{lesion.file_name:<24}{lesion.split.label:<6}{lesion.lesion_type.label:<12}"
            f"{lesion.long_diameter_mm:>8.1f}{lesion.short_diameter_mm:>9.1f}{lesion.slice_interval_mm:>9g}"
            f"  {box}{'  noisy' if lesion.noisy else ''}"
        )
    return "\n".join(lines) + "\n"


@handle_errors
def validate(
    annotations: AnnotationsOption = None,
    root: RootOption = None,
    full: Annotated[
        bool,
        typer.Option("--full/--quick", help="Decode every slice (slow) or read PNG headers only (default)."),
    ] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes for the image inventory.")] = 1,
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (tcp://host:8786) to run the inventory on.")
    ] = None,
    progress: ProgressOption = None,
    limit: Annotated[int, typer.Option(help="Findings printed per code without --json.")] = 20,
    json: JsonOption = False,
) -> None:
    """Check the annotations (each row and across rows) and, with a data root, the images on disk against
    them (missing and broken slices, runs, sizes). Exit 1 if there are errors."""
    from collections import Counter

    from deeplesion.catalog import resolve_root
    from deeplesion.checks import check_catalog
    from deeplesion.cli.progress import progress_bar
    from deeplesion.findings import CODES, count_by_severity, has_errors
    from deeplesion.inventory import run_inventory

    inventory_root = resolve_root(root) if (root is not None or not annotations) else None
    catalog = _load(annotations, inventory_root, strictness="ignore")
    findings = check_catalog(catalog)
    stats: dict[str, int] = {}
    if inventory_root is not None:
        with progress_bar("checking series folders", progress) as update:
            inventory = run_inventory(
                inventory_root, catalog, full=full, jobs=jobs, scheduler=scheduler, progress=update
            )
        findings += inventory.findings
        stats = {
            "folders": inventory.folders,
            "slices": inventory.slices,
            "bytes": inventory.bytes,
            "decoded": inventory.decoded,
        }
    counts = count_by_severity(findings)
    by_code = Counter(f.code for f in findings)
    if json:
        print_json(
            {
                "source": catalog.source,
                "root": None if inventory_root is None else str(inventory_root),
                "mode": "full" if full else "quick",
                "rows_checked": len(catalog),
                **stats,
                "counts": counts,
                "by_code": dict(sorted(by_code.items())),
                "findings": [f.to_dict() for f in findings],
            }
        )
    else:
        shown: Counter[str] = Counter()
        for f in findings:
            shown[f.code] += 1
            if shown[f.code] <= limit:
                print(f.line_text())
        hidden = {code: n - limit for code, n in by_code.items() if n > limit}
        if hidden:
            print(
                "(not shown: "
                + ", ".join(f"{n} more {code}" for code, n in sorted(hidden.items()))
                + "; use --limit or --json)"
            )
        print(f"\n{'code':<28}{'severity':<10}{'count':>7}")
        for code, n in sorted(by_code.items(), key=lambda kv: (list(CODES).index(kv[0]), kv[0])):
            print(f"{code:<28}{CODES[code][0]!s:<10}{n:>7}")
        checked = f"{len(catalog)} rows"
        if stats:
            checked += (
                f", {stats['folders']} folders, {stats['slices']} slices ({'decoded' if full else 'headers'})"
            )
        totals = f"{counts['error']} errors, {counts['warning']} warnings, {counts['note']} notes"
        print(f"{checked} checked: {totals}")
    if has_errors(findings):
        raise typer.Exit(EXIT_DATA_ERRORS)


def register(app: typer.Typer) -> None:
    """Add the catalog commands to ``app``."""
    app.command()(info)
    app.command()(lesions)
    app.command()(validate)
