"""``deeplesion synth``: write a synthetic release in the official layout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from deeplesion.cli.common import JobsOption, JsonOption, ProgressOption, handle_errors, print_json


@handle_errors
def synth(
    out: Annotated[Path, typer.Option(help="Output folder (refused when not empty, unless --force).")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients (about 120 slices each).")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    zips: Annotated[
        bool, typer.Option("--zips", help="Also write Images_png_NN.zip and MD5_checksums.txt.")
    ] = False,
    quirks: Annotated[
        bool,
        typer.Option("--quirks", help="Plant the release's real oddities; listed in synth-manifest.json."),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out.")] = False,
    jobs: JobsOption = 1,
    progress: ProgressOption = None,
    json: JsonOption = False,
) -> None:
    """Generate a synthetic DeepLesion release: DL_info.csv, Images_png/, optionally the zips."""
    from deeplesion.cli.progress import progress_bar
    from deeplesion.synth import make_synthetic_release

    with progress_bar("rendering slices", progress) as update:
        result = make_synthetic_release(
            out,
            patients=patients,
            seed=seed,
            zips=zips,
            quirks=quirks,
            force=force,
            progress=update,
            jobs=jobs,
        )
    summary = {
        "out": str(result.root),
        "patients": result.patients,
        "lesions": result.lesions,
        "key_slices": result.key_slices,
        "slices": result.slices,
        "bytes": result.bytes_written,
        "zips": result.zips,
        "quirks": result.quirks,
    }
    if json:
        print_json(summary)
    else:
        print(
            f"wrote {result.root}: {result.patients} patients, {result.lesions} lesions on "
            f"{result.key_slices} key slices, {result.slices} slices, {result.bytes_written / 1e6:.1f} MB"
            + (f", {len(result.zips)} zips" if result.zips else "")
            + (f", {len(result.quirks)} planted quirks (synth-manifest.json)" if result.quirks else ""),
            file=sys.stdout,
        )


def register(app: typer.Typer) -> None:
    """Add ``synth`` to ``app``."""
    app.command()(synth)
