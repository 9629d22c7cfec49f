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

from deeplesion.errors import PredictionError

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

    file_name: npt.NDArray[np.object_]
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
    file_name: list[str],
    values: npt.NDArray[np.float64],
    lines: npt.NDArray[np.int64],
    label: str,
    lenient: bool,
    problems: list[str],
) -> npt.NDArray[np.bool_]:
    """Rows that are usable; errors (or warnings) for the others."""
    finite = np.asarray(np.isfinite(values).all(axis=1))
    ordered = (values[:, 2] >= values[:, 0]) & (values[:, 3] >= values[:, 1])
    named = np.array([name.endswith(".png") and name.count("_") == 3 for name in file_name], dtype=bool)
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
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise PredictionError(f"{path}: empty; expected a header {','.join(PREDICTION_COLUMNS)}")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in PREDICTION_COLUMNS if c not in header]
    if missing:
        raise PredictionError(
            f"{path}: column(s) {', '.join(missing)} missing; the header must hold "
            f"{','.join(PREDICTION_COLUMNS)} (found {','.join(header)})"
        )
    index = [header.index(c) for c in PREDICTION_COLUMNS]
    problems: list[str] = []
    names: list[str] = []
    cells: list[list[str]] = []
    lines: list[int] = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            _fail_or_skip(
                f"{path}:{number}: {len(row)} cells, the header has {len(header)}", lenient, problems
            )
            continue
        names.append(row[index[0]].strip())
        cells.append([row[i] for i in index[1:]])
        lines.append(number)
    line_array = np.array(lines, dtype=np.int64)
    try:
        values = np.array(cells, dtype=np.float64).reshape(-1, 5)
    except ValueError:
        values = np.full((len(cells), 5), np.nan)
        keep_rows = np.ones(len(cells), dtype=bool)
        for i, row_cells in enumerate(cells):
            try:
                values[i] = np.array(row_cells, dtype=np.float64)
            except ValueError:
                _fail_or_skip(f"{path}:{lines[i]}: not a number in {row_cells}", lenient, problems)
                keep_rows[i] = False
        names = [n for n, k in zip(names, keep_rows, strict=True) if k]
        values, line_array = values[keep_rows], line_array[keep_rows]
    good = _validate(names, values, line_array, str(path), lenient, problems)
    file_names = np.array(names, dtype=object)
    return Predictions(
        file_names[good], values[good, :4], values[good, 4], line_array[good], str(path), problems
    )


def read_predictions_coco(path: str | os.PathLike[str], *, lenient: bool = False) -> Predictions:
    """Read a COCO results JSON: a list of ``{"image_id", "bbox": [x, y, w, h], "score", ...}``.

    Image ids are those of this toolkit's COCO export (:func:`deeplesion.coco.coco_image_id`).
    """
    from deeplesion.coco import boxes_from_coco, file_name_of_image_id

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
    xyxy = boxes_from_coco(np.array(boxes, dtype=np.float64).reshape(-1, 4))
    values = np.column_stack([xyxy, np.array(scores, dtype=np.float64)]) if scores else np.zeros((0, 5))
    line_array = np.array(lines, dtype=np.int64)
    good = _validate(names, values, line_array, str(path), lenient, problems)
    file_names = np.array(names, dtype=object)
    return Predictions(
        file_names[good], values[good, :4], values[good, 4], line_array[good], str(path), problems
    )
