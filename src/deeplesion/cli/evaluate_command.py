"""``deeplesion evaluate``: the official FROC of a predictions file."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from deeplesion.cli.common import JsonOption, PredictionFormat, RootOption, handle_errors, print_json


class ProtocolChoice(enum.StrEnum):
    MULAN = "mulan"
    THREE_DCE = "3dce"


class ByChoice(enum.StrEnum):
    SIZE = "size"
    TYPE = "type"
    INTERVAL = "interval"


def _levels(text: str) -> tuple[float, ...]:
    from deeplesion.errors import UsageError

    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(
            f"--fp-levels {text!r}: give numbers separated by commas, like 0.5,1,2,4,8,16"
        ) from None


@handle_errors
def evaluate(
    predictions: Annotated[
        Path,
        typer.Argument(
            help="CSV File_name,x1,y1,x2,y2,score (0-based pixels), or COCO results JSON with --format coco."
        ),
    ],
    annotations: Annotated[
        Path | None,
        typer.Option("--annotations", "-a", help="DL_info.csv (or a split file). Default: under --root."),
    ] = None,
    root: RootOption = None,
    split: Annotated[str, typer.Option(help="Split to evaluate: test, val or train.")] = "test",
    protocol: Annotated[ProtocolChoice, typer.Option(help="How the curve is read at each level.")] = (
        ProtocolChoice.MULAN
    ),
    iou: Annotated[float, typer.Option(help="Overlap threshold for a hit.")] = 0.5,
    iobb: Annotated[
        bool, typer.Option("--iobb", help="Intersection over the detection's box, not IoU.")
    ] = False,
    fp_levels: Annotated[str, typer.Option(help="False positives per image to report.")] = "0.5,1,2,4,8,16",
    by: Annotated[
        ByChoice | None, typer.Option(help="Stratify by lesion size, lesion type or slice interval.")
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(min=0, help="Patient-bootstrap replicates for 95% intervals.")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Write the FROC curve(s) to this PNG.")] = None,
    input_format: Annotated[PredictionFormat, typer.Option("--format", help="Predictions file format.")] = (
        PredictionFormat.CSV
    ),
    lenient: Annotated[
        bool, typer.Option("--lenient", help="Skip bad prediction rows with a warning.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Sensitivity at 0.5-16 false positives per image, exactly as the reference implementations."""
    from deeplesion import __version__
    from deeplesion.catalog import DEFAULT_FILE_NAME, load_catalog, resolve_root
    from deeplesion.evaluate.predictions import read_predictions_coco, read_predictions_csv
    from deeplesion.evaluate.run import evaluate as run_evaluation
    from deeplesion.io import file_digest

    annotations_path = annotations if annotations is not None else resolve_root(root) / DEFAULT_FILE_NAME
    catalog = load_catalog(annotations_path)
    reader = read_predictions_coco if input_format is PredictionFormat.COCO else read_predictions_csv
    preds = reader(predictions, lenient=lenient)
    levels = _levels(fp_levels)
    evaluation = run_evaluation(
        catalog,
        preds,
        split=split,
        protocol=protocol.value,
        iou=iou,
        iobb=iobb,
        fp_levels=levels,
        by=by.value if by else None,
        bootstrap=bootstrap,
        seed=seed,
        lenient=lenient,
    )
    result = evaluation.result
    result["inputs"] = {
        "predictions": {
            "path": str(predictions),
            "sha256": file_digest(predictions, "sha256"),
            "format": input_format.value,
        },
        "annotations": {"path": str(annotations_path), "sha256": file_digest(annotations_path, "sha256")},
        "deeplesion_version": __version__,
    }
    if plot is not None:
        from deeplesion.evaluate.plot import save_froc_plot

        curves = (
            evaluation.curves if by is None else {k: v for k, v in evaluation.curves.items() if k != "all"}
        )
        save_froc_plot(plot, curves, levels, protocol.value, title=f"FROC, {result['split']} split")
        result["plot"] = str(plot)
    if json:
        print_json(result)
    else:
        print(_table(result))


def _table(result: dict) -> str:  # type: ignore[type-arg]
    levels = list(result["sensitivity"])
    width = max([8, *(len(s["name"]) + 2 for s in result.get("strata", []))])

    def row(name: str, part: dict) -> str:  # type: ignore[type-arg]
        values = ["-" if v is None else f"{v:6.4f}" for v in part["sensitivity"].values()]
        mean = part["mean_sensitivity_0.5_4"]
        return (
            f"{name:<{width}}"
            + "".join(f"{v:>10}" for v in values)
            + f"{'-' if mean is None else f'{mean:.4f}':>10}"
        )

    lines = [
        f"protocol {result['protocol']}, {result['split']} split: {result['images']} images, "
        f"{result['lesions']} lesions, {result['predictions']} predictions "
        f"({result['ignored_predictions']} ignored), IoU >= "
        f"{result['iou']:g}{' (IoBB)' if result['iobb'] else ''}, frame {result['frame']}",
        f"{'FPs/img':<{width}}" + "".join(f"{k:>10}" for k in levels) + f"{'mean0.5-4':>10}",
        row("all", result),
    ]
    for stratum in result.get("strata", []):
        lines.append(row(stratum["name"], stratum))
    if "confidence_intervals" in result:
        ci = result["confidence_intervals"]
        intervals = "  ".join(f"{k}: {lo:.3f}-{hi:.3f}" for k, (lo, hi) in ci["sensitivity"].items())
        low, high = ci["mean_sensitivity_0.5_4"]
        lines.append(
            f"95% CI ({ci['replicates']} patient bootstraps)  {intervals}  mean0.5-4: {low:.3f}-{high:.3f}"
        )
    lines.append(f"max FPs per image {result['max_fp_per_image']:.3f}; ties: {result['tie_rule']}")
    if result["extrapolated"]:
        lines.append(f"extrapolated beyond the curve: {', '.join(result['extrapolated'])}")
    lines.extend(f"note: {n}" for n in result["notes"])
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to ``app``."""
    app.command()(evaluate)
