"""``deeplesion cache build`` and ``cache info``: the decoded cache of the slices that samples read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from deeplesion.cli.common import (
    EXIT_DATA_ERRORS,
    JobsOption,
    JsonOption,
    ProgressOption,
    RootOption,
    SchedulerOption,
    handle_errors,
    print_json,
)

cache_app = typer.Typer(
    help="The decoded cache: slices decoded once, read without PNG decoding.", no_args_is_help=True
)

CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="The cache folder (default ROOT/.deeplesion/cache).", show_default=False
    ),
]


@cache_app.command("build")
@handle_errors
def cache_build(
    root: RootOption = None,
    cache_dir: CacheDirOption = None,
    annotations: Annotated[
        Path | None, typer.Option("--annotations", "-a", help="Default: ROOT/DL_info.csv.")
    ] = None,
    split: Annotated[list[str] | None, typer.Option(help="Only this split; repeat for several.")] = None,
    context_mm: Annotated[
        float,
        typer.Option("--context-mm", min=0, help="How far stacks reach on each side of a key slice, mm."),
    ] = 30.0,
    jobs: JobsOption = 1,
    scheduler: SchedulerOption = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild runs that are cached already.")] = False,
    progress: ProgressOption = None,
    json: JsonOption = False,
) -> None:
    """Decode, once, the slices that 2.5D samples of the key slices read; resumable."""
    from deeplesion.cache import build_cache
    from deeplesion.catalog import DEFAULT_FILE_NAME, load_catalog, resolve_root
    from deeplesion.cli.progress import progress_bar

    root_path = resolve_root(root)
    catalog = load_catalog(annotations or root_path / DEFAULT_FILE_NAME)
    with progress_bar("caching runs", progress) as update:
        summary = build_cache(
            root_path,
            catalog,
            cache_dir=cache_dir,
            split=split,
            context_mm=context_mm,
            jobs=jobs,
            scheduler=scheduler,
            force=force,
            progress=update,
        )
    document = {
        "cache_dir": str(summary.cache_dir),
        "runs": summary.runs,
        "written": summary.written,
        "already_cached": summary.present,
        "slices": summary.slices,
        "key_slices": summary.keys,
        "bytes": summary.bytes,
        "failed": summary.failed,
    }
    if json:
        print_json(document)
        if summary.failed:
            raise typer.Exit(EXIT_DATA_ERRORS)
        return
    per_key = summary.bytes / max(summary.keys, 1) / 1e6
    print(
        f"{summary.cache_dir}: {summary.runs} runs ({summary.written} written, {summary.present} already "
        f"cached), {summary.slices} slices for {summary.keys} key slices, {summary.bytes / 1e6:.1f} MB "
        f"({per_key:.2f} MB per key slice)"
    )
    for message in summary.failed[:20]:
        print(f"  not cached: {message}", file=sys.stderr)
    if summary.failed:
        raise typer.Exit(EXIT_DATA_ERRORS)


@cache_app.command("info")
@handle_errors
def cache_info_command(
    root: RootOption = None,
    cache_dir: CacheDirOption = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check every array's CRC-32 too.")] = False,
    json: JsonOption = False,
) -> None:
    """What a cache holds, its disk cost next to the PNGs', and whether it is current (exit 1 if not)."""
    from deeplesion.cache import cache_info, default_cache_dir
    from deeplesion.catalog import resolve_root

    root_path = resolve_root(root)
    info = cache_info(cache_dir or default_cache_dir(root_path), root_path, verify=verify)
    document = {
        "cache_dir": str(info.cache_dir),
        "runs": info.runs,
        "slices": info.slices,
        "key_slices": info.keys,
        "bytes": info.bytes,
        "png_bytes": info.png_bytes,
        "findings": [f.to_dict() for f in info.findings],
    }
    if json:
        print_json(document)
    else:
        ratio = info.bytes / info.png_bytes if info.png_bytes else float("nan")
        print(
            f"{info.cache_dir}: {info.runs} valid runs, {info.slices} slices for {info.keys} key slices; "
            f"{info.bytes / 1e6:.1f} MB ({info.bytes / max(info.keys, 1) / 1e6:.2f} MB per key slice), "
            f"{ratio:.1f}x the {info.png_bytes / 1e6:.1f} MB of their PNGs"
        )
        for finding in info.findings:
            print(finding.line_text(), file=sys.stderr)
    if any(str(f.severity) != "note" for f in info.findings):
        raise typer.Exit(EXIT_DATA_ERRORS)


def register(app: typer.Typer) -> None:
    """Add ``cache`` (with ``build`` and ``info``) to ``app``."""
    app.add_typer(cache_app, name="cache")
