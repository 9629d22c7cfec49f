"""``deeplesion predict``: a trained detector on a split's key slices, in the evaluation's format."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deeplesion.detect.config import TrainConfig
from deeplesion.detect.model import build_model
from deeplesion.errors import UsageError

log = logging.getLogger(__name__)


@dataclass
class PredictSummary:
    """What :func:`predict` did."""

    out: Path
    images: int
    detections: int
    skipped: list[str]
    seconds: float


def pick_device(device: str | None) -> torch.device:
    """``device`` (``cpu``, ``cuda``, ``cuda:1`` ...), or the first GPU when there is one, else the CPU."""
    return torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_detector(
    checkpoint: str | os.PathLike[str],
    *,
    device: torch.device | None = None,
    max_detections: int | None = None,
    score_floor: float | None = None,
) -> tuple[torch.nn.Module, TrainConfig]:
    """The model of a checkpoint written by ``deeplesion train`` (eval mode), and its config.

    Raises
    ------
    UsageError
        The file is missing or is not a deeplesion checkpoint.
    """
    path = Path(checkpoint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise UsageError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise UsageError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UsageError(f"{path}: not a checkpoint of `deeplesion train` (no model and config in it)")
    config = TrainConfig(**state["config"])
    if max_detections is not None:
        config.detections_per_image = max_detections
    if score_floor is not None:
        config.score_floor = score_floor
    model = build_model(config.model, **config.model_options())
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise UsageError(
            f"{path}: its weights do not fit this version's {config.model} model (written by deeplesion "
            f"{state.get('version', '?')}; {first[:200]})"
        ) from None
    model.to(device or torch.device("cpu"))
    model.eval()
    return model, config


def predict(
    checkpoint: str | os.PathLike[str],
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    split: str = "test",
    output_format: str = "csv",
    max_detections: int = 100,
    score_floor: float = 0.001,
    batch: int = 4,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PredictSummary:
    """Detect lesions on every key slice of ``split`` and write them for ``deeplesion evaluate``.

    Boxes are mapped back to the original image's 0-based pixels (``File_name,x1,y1,x2,y2,score``), or
    written as COCO results (``output_format='coco'``, the toolkit's image ids).

    Parameters
    ----------
    max_detections, score_floor
        At most this many boxes per image, above this score (defaults reach the 8 and 16 FP points).
    batch
        Images per forward pass.
    device
        ``cpu``, ``cuda``, ``cuda:1``...; default the first GPU if any, else the CPU.
    progress
        ``progress(done, total)`` after each batch.
    """
    from deeplesion.detect.train import detect_stacks, evaluation_dataset, key_slice_items
    from deeplesion.evaluate.predictions import Predictions, write_predictions
    from deeplesion.release import open_release

    if output_format not in ("csv", "coco"):
        raise UsageError(f"--format {output_format!r}: use csv or coco")
    if max_detections < 1 or not 0 <= score_floor < 1:
        raise UsageError("--max-detections must be at least 1 and --score-floor in [0, 1)")
    started = time.monotonic()
    chosen = pick_device(device)
    model, config = load_detector(
        checkpoint, device=chosen, max_detections=max_detections, score_floor=score_floor
    )
    release = open_release(root)
    dataset = evaluation_dataset(release, config, split, exclude_noisy=False)
    if len(dataset) == 0:
        raise UsageError(f"{release.root}: no key slices of split {split} on disk")
    skipped: list[str] = []

    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, len(dataset))

    names, boxes, scores = detect_stacks(
        model, key_slice_items(dataset, skipped), device=chosen, batch=batch, on_batch=advance
    )
    predictions = Predictions(np.array(names, dtype=str), boxes, scores, np.arange(len(names)) + 2, "predict")
    target = write_predictions(out, predictions, format=output_format)
    return PredictSummary(
        target, len(dataset) - len(skipped), len(names), skipped, time.monotonic() - started
    )
