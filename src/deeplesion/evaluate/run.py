"""``evaluate``: ground truth from the catalog, predictions, the FROC, strata and bootstrap intervals."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import Catalog, LesionType, Split
from deeplesion.errors import PredictionError, UsageError
from deeplesion.evaluate.froc import (
    DEFAULT_FP_LEVELS,
    HEADLINE_LEVELS,
    PROTOCOLS,
    Curve,
    Events,
    Protocol,
    curve_from_events,
    match,
    read_levels,
)
from deeplesion.evaluate.predictions import Predictions
from deeplesion.names import folder_of

log = logging.getLogger(__name__)

TIE_RULE = "score descending, then File_name, x1, y1, x2, y2 ascending"
FRAME = "original"
"""Boxes are compared in original image pixels (3DCE's frame; MULAN's published numbers used its resized
network frame, so they are not exactly comparable)."""
SIZE_BINS: tuple[tuple[str, float, float, bool], ...] = (
    ("<10 mm", 0.0, 10.0, False),
    ("10-30 mm", 10.0, 30.0, True),
    (">30 mm", 30.0, float("inf"), False),
)
"""Long-diameter strata: [0, 10), [10, 30], (30, inf) mm (the flag says whether the upper end is included)."""
INTERVAL_LIMIT_MM = 2.0
Stratify = Literal["size", "type", "interval"]


def level_key(level: float) -> str:
    """JSON key of a level: ``format(level, "g")`` (``0.5``, ``1``, ``16``)."""
    return format(level, "g")


@dataclass(frozen=True)
class GroundTruth:
    """The evaluated images and their lesions (noisy lesions removed)."""

    file_names: npt.NDArray[np.object_]  # (I,) sorted: the image index order
    patient: npt.NDArray[np.int64]  # (I,)
    slice_interval_mm: npt.NDArray[np.float64]  # (I,)
    lesion_image: npt.NDArray[np.int64]  # (G,)
    lesion_boxes: npt.NDArray[np.float64]  # (G, 4) project frame
    lesion_long_mm: npt.NDArray[np.float64]  # (G,)
    lesion_type: npt.NDArray[np.int64]  # (G,)
    split_folders: frozenset[str]


def ground_truth(catalog: Catalog, split: str | Split) -> GroundTruth:
    """Key slices of ``split`` with at least one lesion not flagged Possibly_noisy, and those lesions."""
    rows = catalog.filter(split=split)
    if len(rows) == 0:
        raise UsageError(f"the annotations have no {Split.parse(split).label} rows to evaluate against")
    clean = rows.filter(noisy=False)
    names, image_of = np.unique(clean.file_name.astype(str), return_inverse=True)
    first_row = np.unique(image_of, return_index=True)[1]
    return GroundTruth(
        file_names=names.astype(object),
        patient=clean.patient[first_row],
        slice_interval_mm=clean.slice_interval_mm[first_row],
        lesion_image=image_of.astype(np.int64),
        lesion_boxes=clean.box,
        lesion_long_mm=clean.long_diameter_mm,
        lesion_type=clean.lesion_type,
        split_folders=frozenset(rows.folder.tolist()),
    )


@dataclass(frozen=True)
class Detections:
    """Predictions on evaluated images, in evaluation order."""

    image: npt.NDArray[np.int64]
    boxes: npt.NDArray[np.float64]
    ignored: int
    outside_split: int
    source: npt.NDArray[np.int64]
    """(D,) position of each detection in the ``Predictions`` it came from."""


def assign(predictions: Predictions, truth: GroundTruth, *, lenient: bool = False) -> Detections:
    """Keep predictions on evaluated images (sorted by the tie rule); count those on other slices of the
    split; refuse (or with ``lenient`` skip) those on slices outside the split."""
    names = np.asarray(predictions.file_name, dtype=str)
    known = np.asarray(truth.file_names, dtype=str)  # sorted
    position = np.minimum(np.searchsorted(known, names), max(len(known) - 1, 0))
    evaluated = known[position] == names if len(known) else np.zeros(len(names), dtype=bool)
    in_split = np.zeros(len(names), dtype=bool)
    others = np.flatnonzero(~evaluated)  # usually none: no per-name work on the evaluated ones
    in_split[others] = [folder_of(n) in truth.split_folders for n in names[others].tolist()]
    outside = ~evaluated & ~in_split
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        message = (
            f"{predictions.source}:{predictions.line[i]}: {names[i]} is not a slice of the evaluated "
            f"split ({int(outside.sum())} such prediction(s))"
        )
        if not lenient:
            raise PredictionError(message + "; evaluate another `split`, or pass `lenient=True` to skip them")
        log.warning("%s; skipped", message)
    image = position[evaluated].astype(np.int64)
    boxes = predictions.boxes[evaluated]
    score = predictions.score[evaluated]
    source = np.flatnonzero(evaluated).astype(np.int64)
    # The tie rule orders equal scores by image, then box; with distinct scores (the usual case) the
    # score alone decides, and one argsort is ten times cheaper than the six-key lexsort.
    order = np.argsort(-score, kind="stable")
    ranked = score[order]
    if (ranked[1:] == ranked[:-1]).any():
        order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], image, -score))
    return Detections(
        image[order], boxes[order], int((~evaluated & in_split).sum()), int(outside.sum()), source[order]
    )


def _result(curve: Curve, levels: Sequence[float], protocol: Protocol) -> dict[str, Any]:
    reading = read_levels(curve, tuple(levels), protocol)
    headline = read_levels(curve, HEADLINE_LEVELS, protocol)
    defined = curve.num_lesions > 0
    return {
        "sensitivity": {level_key(k): (v if defined else None) for k, v in reading.sensitivity.items()},
        "mean_sensitivity_0.5_4": float(np.mean(list(headline.sensitivity.values()))) if defined else None,
        "max_fp_per_image": curve.max_fp_per_image,
        "extrapolated": [level_key(v) for v in reading.extrapolated],
        "notes": reading.notes + ([] if defined else ["no lesions in this stratum: sensitivity undefined"]),
    }


def _run(
    truth: GroundTruth,
    detections: Detections,
    lesion_mask: npt.NDArray[np.bool_] | None,
    image_mask: npt.NDArray[np.bool_] | None,
    iou: float,
    iobb: bool,
) -> tuple[Events, Curve, int]:
    """Match within a stratum: ``lesion_mask`` filters lesions only; ``image_mask`` filters images."""
    num_images = len(truth.file_names)
    keep_lesion = np.ones(len(truth.lesion_image), dtype=bool) if lesion_mask is None else lesion_mask.copy()
    det_keep = np.ones(len(detections.image), dtype=bool)
    image_index = np.arange(num_images)
    if image_mask is not None:
        keep_lesion &= image_mask[truth.lesion_image]
        det_keep = image_mask[detections.image]
        image_index = np.cumsum(image_mask) - 1
        num_images = int(image_mask.sum())
    events = match(
        image_index[detections.image[det_keep]],
        detections.boxes[det_keep],
        image_index[truth.lesion_image[keep_lesion]],
        truth.lesion_boxes[keep_lesion],
        num_images,
        threshold=iou,
        iobb=iobb,
    )
    curve = curve_from_events(events.hits, events.false_positive, num_images, int(keep_lesion.sum()))
    return events, curve, int(det_keep.sum())


def _strata(truth: GroundTruth, by: Stratify, split: Split) -> list[tuple[str, Any, Any]]:
    """(name, lesion mask, image mask) per stratum."""
    if by == "size":
        out = []
        for name, low, high, inclusive in SIZE_BINS:
            size = truth.lesion_long_mm
            upper = size <= high if inclusive else size < high
            lower = size > low if name.startswith(">") else size >= low
            out.append((name, lower & upper, None))
        return out
    if by == "type":
        if split is Split.TRAIN:
            raise UsageError(
                "lesion types are only annotated on val and test rows; use `split='val'` or `split='test'`"
            )
        return [
            (t.label, truth.lesion_type == int(t), None) for t in LesionType if t is not LesionType.UNKNOWN
        ]
    if by == "interval":
        thin = truth.slice_interval_mm <= INTERVAL_LIMIT_MM
        return [(f"<={INTERVAL_LIMIT_MM:g} mm", None, thin), (f">{INTERVAL_LIMIT_MM:g} mm", None, ~thin)]
    raise UsageError(f"unknown stratification {by!r}; use size, type or interval")


def _bootstrap(
    truth: GroundTruth, events: Events, levels: Sequence[float], protocol: Protocol, n: int, seed: int
) -> dict[str, Any]:
    """Resample patients with replacement; 95% percentile intervals per level and for the mean."""
    rng = np.random.default_rng(seed)
    patients, patient_of_image = np.unique(truth.patient, return_inverse=True)
    lesions_per_image = np.bincount(truth.lesion_image, minlength=len(truth.file_names))
    keys = [*levels, *HEADLINE_LEVELS]
    samples = np.empty((n, len(keys)))
    for b in range(n):
        counts = np.bincount(rng.integers(0, len(patients), len(patients)), minlength=len(patients))
        per_image = counts[patient_of_image]
        repeat = per_image[events.image]
        order = np.repeat(np.arange(len(events.image)), repeat)  # copies stay next to each other
        curve = curve_from_events(
            events.hits[order],
            events.false_positive[order],
            int(per_image.sum()),
            int((per_image * lesions_per_image).sum()),
        )
        reading = read_levels(curve, tuple(keys), protocol).sensitivity
        samples[b] = [reading[k] for k in keys]
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    mean_samples = samples[:, len(levels) :].mean(axis=1)
    return {
        "method": "patients resampled with replacement; 95% percentile intervals",
        "replicates": n,
        "seed": seed,
        "sensitivity": {level_key(v): [float(low[i]), float(high[i])] for i, v in enumerate(levels)},
        "mean_sensitivity_0.5_4": [
            float(np.percentile(mean_samples, 2.5)),
            float(np.percentile(mean_samples, 97.5)),
        ],
    }


@dataclass(frozen=True)
class Evaluation:
    """The JSON-ready result and the curves (for plots)."""

    result: dict[str, Any]
    curves: dict[str, Curve]


def evaluate(
    catalog: Catalog,
    predictions: Predictions,
    *,
    split: str | Split = "test",
    protocol: Protocol = "mulan",
    iou: float = 0.5,
    iobb: bool = False,
    fp_levels: Sequence[float] = DEFAULT_FP_LEVELS,
    by: Stratify | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    lenient: bool = False,
) -> Evaluation:
    """The official DeepLesion FROC of ``predictions`` against ``catalog``'s ``split``.

    Parameters
    ----------
    catalog
        Annotations (any file holding the split's rows).
    predictions
        From :func:`~deeplesion.evaluate.predictions.read_predictions_csv` or ``..._coco``.
    split
        ``test`` (default), ``val`` or ``train``.
    protocol
        ``mulan`` (default) or ``3dce``: how the curve is read at each level (see
        :mod:`deeplesion.evaluate.froc`).
    iou
        Overlap threshold (0.5 in every published result).
    iobb
        Use intersection over the detection's box instead of IoU.
    fp_levels
        False positives per image at which to report sensitivity.
    by
        ``size``, ``type`` (lesion strata: ground truth filtered, every detection kept, so a hit on a lesion
        outside the stratum is a false positive, as the references do) or ``interval`` (image strata).
    bootstrap
        Number of patient-bootstrap replicates for 95% intervals (0: none).
    seed
        Seed of the bootstrap.
    lenient
        Skip predictions on slices outside the split with a warning instead of an error.

    Returns
    -------
    Evaluation
        ``result`` holds the JSON document of ``deeplesion evaluate --json`` (without ``inputs``).
    """
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; use mulan or 3dce")
    if not 0.0 < iou <= 1.0:
        raise UsageError(f"`iou` must be in (0, 1], got {iou:g}")
    levels = tuple(float(v) for v in fp_levels)
    if not levels or any(not np.isfinite(v) or v <= 0 for v in levels):
        raise UsageError("`fp_levels` must be positive numbers, for example 0.5,1,2,4,8,16")
    split_enum = Split.parse(split)
    truth = ground_truth(catalog, split_enum)
    detections = assign(predictions, truth, lenient=lenient)
    events, curve, used = _run(truth, detections, None, None, iou, iobb)
    notes = [
        f"frame: boxes compared in original image pixels (0-based); {FRAME!r} is 3DCE's frame, MULAN "
        "published numbers computed in its resized network frame"
    ]
    if detections.ignored:
        notes.append(
            f"{detections.ignored} prediction(s) on slices of the split that are not evaluated "
            "key slices were ignored"
        )
    if predictions.problems or detections.outside_split:
        notes.append(
            f"{len(predictions.problems) + detections.outside_split} prediction row(s) skipped (lenient)"
        )
    overall = _result(curve, levels, protocol)
    result: dict[str, Any] = {
        "protocol": protocol,
        "frame": FRAME,
        "iou": iou,
        "iobb": iobb,
        "tie_rule": TIE_RULE,
        "split": split_enum.label,
        "images": len(truth.file_names),
        "lesions": len(truth.lesion_image),
        "predictions": used,
        "ignored_predictions": detections.ignored,
        "skipped_predictions": len(predictions.problems) + detections.outside_split,
        "sensitivity": overall["sensitivity"],
        "mean_sensitivity_0.5_4": overall["mean_sensitivity_0.5_4"],
        "max_fp_per_image": overall["max_fp_per_image"],
        "extrapolated": overall["extrapolated"],
        "notes": notes + overall["notes"],
    }
    curves = {"all": curve}
    if by is not None:
        strata = []
        for name, lesion_mask, image_mask in _strata(truth, by, split_enum):
            _, stratum_curve, stratum_used = _run(truth, detections, lesion_mask, image_mask, iou, iobb)
            strata.append(
                {
                    "name": name,
                    "images": stratum_curve.num_images,
                    "lesions": stratum_curve.num_lesions,
                    "predictions": stratum_used,
                    **_result(stratum_curve, levels, protocol),
                }
            )
            curves[name] = stratum_curve
        rule = (
            (
                "lesion strata: ground truth filtered, every detection kept (a hit on a lesion outside the "
                "stratum counts as a false positive, as in the references)"
            )
            if by != "interval"
            else ("image strata: images, their lesions and their detections filtered")
        )
        result["by"] = by
        result["strata_rule"] = rule
        result["strata"] = strata
    if bootstrap > 0:
        result["confidence_intervals"] = _bootstrap(truth, events, levels, protocol, bootstrap, seed)
    return Evaluation(result, curves)
