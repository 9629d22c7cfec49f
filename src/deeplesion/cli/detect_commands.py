"""``deeplesion train``, ``predict`` and ``detect``: the lesion detector (needs the ``torch`` extra)."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from deeplesion.cli.common import JsonOption, PredictionFormat, ProgressOption, handle_errors, print_json
from deeplesion.errors import UsageError


class PresetChoice(enum.StrEnum):
    CPU_SMALL = "cpu-small"
    PAPER = "paper"


TRAIN_EPILOG = (
    "Presets are plain YAML files shipped in deeplesion/detect/presets/ (print one with --show-config): "
    "cpu-small = tiny 2.5D Faster R-CNN, 3 slices at 2 mm, the [-1024, 3071] HU window, stride-8 features, "
    "192 px lesion-centred crops at 0.8 mm, SGD 0.02 cosine, 8 epochs of 300 steps of 8 (about 12 minutes "
    "on 2 CPU cores for 120 patients); paper = MULAN's recipe: 9 slices at 2 mm, whole slices at 0.8 mm "
    "(<= 512 px), the [-1024, 3071] HU window, ResNet-50 + FPN at stride 4, anchors 16-96, SGD lr 0.004, "
    "weight decay 0.0005, batch 8, 8 epochs, x0.1 at epochs 4 and 6, gradient clip 10, AMP on CUDA. "
    "Multi-GPU: torchrun --nproc_per_node=N -m deeplesion.cli.main train ..."
)


def _torch_needed() -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        raise UsageError(
            "the detector needs torch and torchvision: pip install 'deeplesion[torch]' "
            "(make test installs them)"
        )


def _rich_progress(enabled: bool | None) -> tuple[Any, Any]:
    """A (context manager, deeplesion.detect.train.Progress) pair: bars on a terminal, else nothing."""
    from deeplesion.detect.train import Progress

    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return contextlib.nullcontext(), Progress()
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    from deeplesion.cli.common import stderr_console

    bars = Bars(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=stderr_console(),
    )
    current: dict[str, Any] = {}

    def phase(name: str, total: int) -> None:
        if "task" in current:
            bars.update(current["task"], visible=False)
        current["task"] = bars.add_task(name, total=total, info="")

    def advance(n: int, info: dict[str, float]) -> None:
        text = "  ".join(f"{k} {v:.3g}" for k, v in info.items())
        bars.update(current["task"], advance=n, info=text)

    return bars, Progress(phase, advance)


@contextlib.contextmanager
def _log_through(bars: Any) -> Iterator[None]:
    """While bars are drawn, log lines are printed above them (not through them)."""
    console = getattr(bars, "console", None)
    if console is None:
        yield
        return
    from rich.logging import RichHandler

    root = logging.getLogger()
    handlers = root.handlers[:]
    handler = RichHandler(console=console, show_time=False, show_path=False)
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = handlers


@handle_errors
def train(
    root: Annotated[Path, typer.Option(help="The release folder (DL_info.csv and Images_png).")],
    out: Annotated[Path, typer.Option(help="The run folder (checkpoints, log.jsonl, curve.png).")],
    preset: Annotated[PresetChoice, typer.Option(help="The base configuration.")] = PresetChoice.CPU_SMALL,
    config: Annotated[Path | None, typer.Option(help="A YAML file whose keys override the preset.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from last.pt.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Start the run in --out again.")] = False,
    backbone_weights: Annotated[
        Path | None,
        typer.Option(help="A local ImageNet state dict for the backbone (nothing is downloaded)."),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option(min=1, help="Processes preparing the stacks (default: all).")
    ] = None,
    show_config: Annotated[
        bool, typer.Option("--show-config", help="Print the resolved configuration (YAML) and exit.")
    ] = False,
    progress: ProgressOption = None,
    json: JsonOption = False,
) -> None:
    """Train the 2.5D lesion detector; the official FROC on the val split after each epoch selects best.pt."""
    _torch_needed()
    import yaml

    from deeplesion.detect.config import load_config
    from deeplesion.detect.train import train as run_training

    if backbone_weights is not None and not backbone_weights.is_file():
        raise UsageError(f"--backbone-weights {backbone_weights}: no such file")
    resolved = load_config(
        preset.value, config, backbone_weights=str(backbone_weights) if backbone_weights else None
    )
    if show_config:
        print(yaml.safe_dump(resolved.to_dict(), sort_keys=False), end="")
        return
    if int(os.environ.get("RANK", "0")) == 0:
        logging.getLogger("deeplesion.detect").setLevel(logging.INFO)
    bars, callbacks = _rich_progress(progress)
    with bars, _log_through(bars):
        summary = run_training(root, out, resolved, resume=resume, force=force, jobs=jobs, progress=callbacks)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    last = summary.history[-1] if summary.history else {}
    document = {
        "run": str(summary.run),
        "epochs": summary.epochs,
        "best_epoch": summary.best_epoch,
        "best_val_mean_sensitivity_0.5_4": summary.best,
        "last_val_sensitivity": last.get("val_sensitivity"),
        "seconds": round(summary.seconds, 1),
    }
    if json:
        print_json(document)
    else:
        best = "n/a" if summary.best is None else f"{summary.best:.3f}"
        print(
            f"{summary.run}: {summary.epochs} epochs in {summary.seconds / 60:.1f} min; best epoch "
            f"{summary.best_epoch} (val mean sensitivity 0.5-4 FPs/image {best}) -> {summary.run / 'best.pt'}"
        )


@handle_errors
def predict(
    checkpoint: Annotated[Path, typer.Option(help="A checkpoint of deeplesion train (best.pt).")],
    root: Annotated[Path, typer.Option(help="The release folder.")],
    out: Annotated[Path, typer.Option(help="Where to write the detections.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    output_format: Annotated[
        PredictionFormat, typer.Option("--format", help="csv (File_name,x1,y1,x2,y2,score) or coco.")
    ] = PredictionFormat.CSV,
    max_detections: Annotated[int, typer.Option(min=1, help="Most boxes per image.")] = 100,
    score_floor: Annotated[float, typer.Option(min=0.0, max=1.0, help="Least score kept.")] = 0.001,
    batch: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 4,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: a GPU if any).")] = None,
    progress: ProgressOption = None,
    json: JsonOption = False,
) -> None:
    """Detections on a split's key slices, in original pixels, in the format deeplesion evaluate reads."""
    _torch_needed()
    from deeplesion.cli.progress import progress_bar
    from deeplesion.detect.predict import predict as run_predict

    with progress_bar("predicting", progress) as update:
        summary = run_predict(
            checkpoint,
            root,
            out,
            split=split,
            output_format=output_format.value,
            max_detections=max_detections,
            score_floor=score_floor,
            batch=batch,
            device=device,
            progress=update,
        )
    document = {
        "out": str(summary.out),
        "images": summary.images,
        "detections": summary.detections,
        "skipped": summary.skipped,
        "seconds": round(summary.seconds, 2),
    }
    if json:
        print_json(document)
    else:
        print(
            f"{summary.out}: {summary.detections} detections on {summary.images} images in "
            f"{summary.seconds:.1f} s"
            + (f" ({len(summary.skipped)} unreadable, skipped)" if summary.skipped else "")
        )


@handle_errors
def detect(
    scan: Annotated[
        Path, typer.Argument(help="A NIfTI file, a DICOM series folder or a DeepLesion PNG folder.")
    ],
    checkpoint: Annotated[Path, typer.Option(help="A checkpoint of deeplesion train (best.pt).")],
    out: Annotated[Path, typer.Option(help="Folder for detections.csv and the overlays.")],
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Score from which a finding gets an overlay PNG.")
    ] = 0.5,
    score_floor: Annotated[float, typer.Option(min=0.0, max=1.0, help="Least score written.")] = 0.05,
    annotations: Annotated[
        Path | None, typer.Option(help="DL_info.csv giving a PNG folder's spacing (default: the release's).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 ... (default: a GPU if any).")] = None,
    progress: ProgressOption = None,
    json: JsonOption = False,
) -> None:
    """The detector on your own CT, slice by slice with 2.5D context: OUT/detections.csv and overlays."""
    _torch_needed()
    from deeplesion.cli.progress import progress_bar
    from deeplesion.detect.scan import detect_scan

    with progress_bar("detecting", progress) as update:
        summary = detect_scan(
            scan,
            checkpoint,
            out,
            threshold=threshold,
            score_floor=score_floor,
            annotations=annotations,
            device=device,
            progress=update,
        )
    document = {
        "out": str(summary.out),
        "slices": summary.slices,
        "detections": summary.detections,
        "overlays": [str(p) for p in summary.overlays],
        "seconds": round(summary.seconds, 2),
    }
    if json:
        print_json(document)
    else:
        print(
            f"{summary.out / 'detections.csv'}: {summary.detections} detections on {summary.slices} slices "
            f"({len(summary.overlays)} at or above {threshold:g}, drawn) in {summary.seconds:.1f} s"
        )


def register(app: typer.Typer) -> None:
    """Add the detector's commands to ``app``."""
    app.command(epilog=TRAIN_EPILOG)(train)
    app.command()(predict)
    app.command()(detect)
