"""Reading detections: a CSV ``File_name,x1,y1,x2,y2,score`` or a COCO results JSON.

Boxes are in the project convention: 0-based pixel coordinates of the original image (the DL_info
value minus 1). Rows are checked as they are read; a bad row is an error naming its line (or, when
``lenient``, a warning and the row is skipped).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from deeplesion.errors import PredictionError, UsageError

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("File_name", "x1", "y1", "x2", "y2", "score")


@dataclass
class Predictions:
    """Detections as columns.

    Attributes
    ----------
    file_name
        (N,) object array of slice names ``PPPPPP_SS_RR_NNN.png``.
    boxes
        (N, 4) float64 ``x1, y1, x2, y2``, 0-based pixels of the original image.
    score
        (N,) float64.
    line
        (N,) int64 where each came from (CSV line, or 1-based position in a JSON list).
    source
        The file read.
    problems
        Messages about skipped rows (``lenient`` only).
    """

    file_name: npt.NDArray[np.str_]
    boxes: npt.NDArray[np.float64]
    score: npt.NDArray[np.float64]
    line: npt.NDArray[np.int64]
    source: str
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.score)

    def take(self, mask: npt.NDArray[np.bool_]) -> Predictions:
        """The rows where ``mask`` is True."""
        return Predictions(
            self.file_name[mask],
            self.boxes[mask],
            self.score[mask],
            self.line[mask],
            self.source,
            self.problems,
        )


def _fail_or_skip(message: str, lenient: bool, problems: list[str]) -> None:
    if not lenient:
        raise PredictionError(message + " (or pass `lenient=True` to skip such rows with a warning)")
    log.warning("%s; row skipped", message)
    problems.append(message)


def _validate(
    file_name: npt.NDArray[np.str_],
    values: npt.NDArray[np.float64],
    lines: npt.NDArray[np.int64],
    label: str,
    lenient: bool,
    problems: list[str],
) -> npt.NDArray[np.bool_]:
    """Rows that are usable; errors (or warnings) for the others."""
    finite = np.asarray(np.isfinite(values).all(axis=1))
    ordered = (values[:, 2] >= values[:, 0]) & (values[:, 3] >= values[:, 1])
    named = np.char.endswith(file_name, ".png") & (np.char.count(file_name, "_") == 3)
    good: npt.NDArray[np.bool_] = finite & ordered & named
    for i in np.flatnonzero(~good):
        if not named[i]:
            why = f"File_name {file_name[i]!r} is not a slice name like 000001_01_01_109.png"
        elif not finite[i]:
            why = "a NaN or infinite value"
        else:
            why = f"x2 < x1 or y2 < y1 in box {values[i, :4].tolist()}"
        _fail_or_skip(f"{label}:{lines[i]}: {why}", lenient, problems)
    return good


def read_predictions_csv(path: str | os.PathLike[str], *, lenient: bool = False) -> Predictions:
    """Read a CSV with a header holding ``File_name,x1,y1,x2,y2,score`` (found by name; other columns
    are ignored).

    Raises
    ------
    PredictionError
        Missing file or column, or (unless ``lenient``) a malformed row, naming its line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PredictionError(f"{path}: predictions file not found") from None
    except UnicodeDecodeError:
        raise PredictionError(f"{path}: not a UTF-8 CSV file; for COCO results use `format='coco'`") from None
    header_text, _, body = text.partition("\n")
    header = [h.strip() for h in next(csv.reader([header_text]), [])]
    if not header:
        raise PredictionError(f"{path}: empty; expected a header {','.join(PREDICTION_COLUMNS)}")
    missing = [c for c in PREDICTION_COLUMNS if c not in header]
    if missing:
        raise PredictionError(
            f"{path}: column(s) {', '.join(missing)} missing; the header must hold "
            f"{','.join(PREDICTION_COLUMNS)} (found {','.join(header)})"
        )
    index = [header.index(c) for c in PREDICTION_COLUMNS]
    problems: list[str] = []
    width = len(header)
    if '"' in body:  # quoted cells (a comma inside a name...): the csv module's full rules, row by row
        rows = list(csv.reader(io.StringIO(body, newline="")))
        lines = [",".join(row) for row in rows]  # the quotes are gone: the cells are split on commas below
        counts = np.array([len(row) - 1 for row in rows], dtype=np.int64)
        cells_of = rows
    else:  # the usual machine-written file: whole-text splits and counts in C, many times faster
        lines = body.replace("\r", "").split("\n")
        counts = np.fromiter((line.count(",") for line in lines), dtype=np.int64, count=len(lines))
        cells_of = None
    numbers = np.arange(2, len(lines) + 2, dtype=np.int64)  # file lines (the header is line 1)
    usable = counts == width - 1
    for i in np.flatnonzero(~usable):
        if lines[i].strip():  # blank lines are skipped silently
            found = counts[i] + 1
            _fail_or_skip(f"{path}:{numbers[i]}: {found} cells, the header has {width}", lenient, problems)
    kept = np.flatnonzero(usable)
    line_array = numbers[kept]
    if cells_of is None:
        tokens = ",".join([lines[i] for i in kept]).split(",")
    else:
        tokens = [cell for i in kept for cell in cells_of[i]]
    names = np.char.strip(np.array(tokens[index[0] :: width], dtype=str))
    try:
        columns = [np.array(tokens[j::width], dtype=np.float64) for j in index[1:]]
        values = np.stack(columns, axis=1) if len(kept) else np.zeros((0, 5))
    except ValueError:  # a cell that is not a number: find the rows, one by one (rare)
        values = np.full((len(kept), 5), np.nan)
        keep_rows = np.ones(len(kept), dtype=bool)
        for row in range(len(kept)):
            row_cells = [tokens[row * width + j] for j in index[1:]]
            try:
                values[row] = np.array(row_cells, dtype=np.float64)
            except ValueError:
                _fail_or_skip(f"{path}:{line_array[row]}: not a number in {row_cells}", lenient, problems)
                keep_rows[row] = False
        names, values, line_array = names[keep_rows], values[keep_rows], line_array[keep_rows]
    good = _validate(names, values, line_array, str(path), lenient, problems)
    return Predictions(names[good], values[good, :4], values[good, 4], line_array[good], str(path), problems)


def read_predictions_coco(path: str | os.PathLike[str], *, lenient: bool = False) -> Predictions:
    """Read a COCO results JSON: a list of ``{"image_id", "bbox": [x, y, w, h], "score", ...}``.

    Image ids are those of this toolkit's COCO export (:func:`deeplesion.coco.coco_image_id`).
    """
    from deeplesion.boxes import from_coco
    from deeplesion.names import file_name_of_image_id

    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictionError(f"{path}: predictions file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PredictionError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(results, list):
        raise PredictionError(f"{path}: a COCO results file is a JSON list of detections")
    problems: list[str] = []
    names, boxes, scores, lines = [], [], [], []
    for position, item in enumerate(results, start=1):
        try:
            box = [float(v) for v in item["bbox"]]
            if len(box) != 4:
                raise ValueError("bbox needs 4 numbers")
            names.append(file_name_of_image_id(int(item["image_id"])))
            boxes.append(box)
            scores.append(float(item["score"]))
            lines.append(position)
        except (KeyError, TypeError, ValueError) as exc:
            _fail_or_skip(
                f"{path}: detection {position}: {exc!r} (needs image_id, bbox, score)", lenient, problems
            )
    xyxy = from_coco(np.array(boxes, dtype=np.float64).reshape(-1, 4))
    values = np.column_stack([xyxy, np.array(scores, dtype=np.float64)]) if scores else np.zeros((0, 5))
    line_array = np.array(lines, dtype=np.int64)
    file_names = np.array(names, dtype=str)
    good = _validate(file_names, values, line_array, str(path), lenient, problems)
    return Predictions(
        file_names[good], values[good, :4], values[good, 4], line_array[good], str(path), problems
    )


def write_predictions(path: str | os.PathLike[str], predictions: Predictions, *, format: str = "csv") -> Path:
    """Write detections for :func:`read_predictions_csv` (``File_name,x1,y1,x2,y2,score``, 0-based
    original pixels) or, with ``format='coco'``, for :func:`read_predictions_coco` (``image_id``,
    ``bbox`` ``[x, y, w, h]``, ``score``, ``category_id`` 1). Written atomically."""
    from deeplesion.boxes import to_coco
    from deeplesion.io import replacing
    from deeplesion.names import coco_image_id

    target = Path(path)
    with replacing(target) as tmp:
        if format == "coco":
            coco = to_coco(predictions.boxes)
            items = [
                {
                    "image_id": coco_image_id(str(name)),
                    "category_id": 1,
                    "bbox": [round(float(v), 2) for v in box],
                    "score": round(float(score), 5),
                }
                for name, box, score in zip(predictions.file_name, coco, predictions.score, strict=True)
            ]
            tmp.write_text(json.dumps(items), encoding="utf-8")
        elif format == "csv":
            with tmp.open("w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, lineterminator="\n")
                writer.writerow(PREDICTION_COLUMNS)
                for name, box, score in zip(
                    predictions.file_name, predictions.boxes, predictions.score, strict=True
                ):
                    writer.writerow([name, *(f"{v:.2f}" for v in box), f"{score:.5f}"])
        else:
            raise UsageError(f"unknown predictions format {format!r}; use csv or coco")
    return target
