"""What the viewer serves, without the web framework: rows, series, windowed slices, HU values,
predictions classified as the FROC counts them, and patients with their tracked lesions.

Every name that comes from a URL is checked against the catalog before it touches the disk: a series
folder must be one of the annotation rows' folders and a slice name must be ``NNN.png``, so no path made
of user input is ever opened (no traversal). Errors are :class:`ViewError` with an HTTP status and a
sentence for a person.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import Catalog, LesionType, Split
from deeplesion.errors import DeepLesionError
from deeplesion.evaluate.predictions import Predictions
from deeplesion.release import Release

FOLDER = re.compile(r"^\d{6}_\d{2}_\d{2}$")
SLICE_NAME = re.compile(r"^(\d{3,4})(?:\.png)?$")
MAX_ROWS = 1000
DECODED_SLICES = 32
"""Slices kept decoded for HU lookups under the cursor (about 0.5 MB each)."""
PNG_COMPRESSION = 1
"""zlib level of served slices: level 1 is about twice as fast as the default, for 10% more bytes."""
SORT_KEYS = ("line", "file_name", "patient", "study", "type", "split", "long_mm", "short_mm", "noisy")


class ViewError(DeepLesionError):
    """A request the viewer cannot answer: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class SlicePng:
    """A windowed slice: PNG bytes and the validator that identifies them."""

    data: bytes
    etag: str


def parse_window(text: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """``"LOW,HIGH"`` (HU) -> a window; None -> ``default``."""
    if text is None or text == "":
        return default
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ViewError(400, f"window {text!r}: give LOW,HIGH in HU, like -175,275") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
        raise ViewError(400, f"window {text!r}: LOW must be below HIGH, both finite")
    return low, high


class Viewer:
    """The data behind the viewer: one release, its annotations and optional predictions.

    Parameters
    ----------
    release
        The release on disk (``deeplesion.open``).
    predictions
        Detections in the evaluation's format (:func:`read_predictions_csv`), or None.
    """

    def __init__(self, release: Release, predictions: Predictions | None = None) -> None:
        self.release = release
        self.catalog: Catalog = release.catalog
        self.predictions = predictions
        self._folders = {str(f): i for i, f in enumerate(np.unique(self.catalog.folder.astype(str)))}
        self._rows_of_folder: dict[str, list[int]] = {}
        for i, folder in enumerate(self.catalog.folder.tolist()):
            self._rows_of_folder.setdefault(folder, []).append(i)
        self._index_of_line = {int(r) + 2: i for i, r in enumerate(self.catalog.row.tolist())}
        self._decoded: OrderedDict[tuple[str, int], npt.NDArray[np.int16]] = OrderedDict()
        self._lock = threading.Lock()
        self._classified = self._classify_predictions() if predictions is not None else {}

    # names -------------------------------------------------------------------------------------------
    def check_folder(self, folder: str) -> str:
        """The folder if the annotations name it, else a 404 (400 for a name of the wrong form)."""
        if not FOLDER.match(folder):
            raise ViewError(400, f"{folder!r} is not a series folder name like 000001_01_01")
        if folder not in self._folders:
            raise ViewError(404, f"series {folder} has no row in {self.catalog.source or 'the annotations'}")
        return folder

    def check_slice(self, name: str) -> int:
        """``NNN`` or ``NNN.png`` -> the slice number, else a 400."""
        match = SLICE_NAME.match(name)
        if match is None:
            raise ViewError(400, f"{name!r} is not a slice name like 109.png")
        return int(match.group(1))

    # rows --------------------------------------------------------------------------------------------
    def row(self, i: int) -> dict[str, Any]:
        """One annotation row as the page uses it (0-based pixel coordinates, the project frame)."""
        c = self.catalog
        return {
            "index": i,
            "line": int(c.row[i]) + 2,
            "file_name": str(c.file_name[i]),
            "folder": str(c.folder[i]),
            "key_slice": int(c.key_slice[i]),
            "patient": int(c.patient[i]),
            "study": int(c.study[i]),
            "series": int(c.series[i]),
            "split": Split(int(c.split[i])).label,
            "type": LesionType(int(c.lesion_type[i])).label,
            "long_mm": round(float(c.long_diameter_mm[i]), 2),
            "short_mm": round(float(c.short_diameter_mm[i]), 2),
            "noisy": bool(c.noisy[i]),
            "recist": np.round(c.recist[i], 2).tolist(),
            "box": np.round(c.box[i], 2).tolist(),
            "spacing": [float(v) for v in c.spacing[i]],
            "window": [float(v) for v in c.window[i]],
            "slice_range": [int(v) for v in c.slice_range[i]],
            "image_size": [int(v) for v in c.image_size[i]],
            "location": [round(float(v), 4) for v in c.location[i]],
            "predictions": len(self._classified.get(str(c.file_name[i]), [])),
        }

    def lesion(self, line: str) -> dict[str, Any]:
        """The row on ``line`` of the annotations file (1-based; the header is line 1)."""
        number = _number("line", line)
        index = self._index_of_line.get(int(number)) if number == int(number) else None
        if index is None:
            raise ViewError(
                404, f"line {line} of {self.catalog.source or 'the annotations'} is not a lesion row"
            )
        return self.row(index)

    def lesions(self, query: dict[str, str]) -> dict[str, Any]:
        """The rows, filtered and sorted by the query parameters (documented in ``docs/viewer.md``)."""
        c = self.catalog
        keep = np.ones(len(c), dtype=bool)
        known = {
            "split",
            "type",
            "patient",
            "noisy",
            "min_mm",
            "max_mm",
            "sort",
            "order",
            "limit",
            "offset",
            "q",
        }
        unknown = sorted(set(query) - known)
        if unknown:
            raise ViewError(400, f"unknown parameter {unknown[0]!r}; use {', '.join(sorted(known))}")
        try:
            if query.get("split"):
                keep &= c.split == int(Split.parse(query["split"]))
            if query.get("type"):
                keep &= c.lesion_type == int(LesionType.parse(query["type"]))
        except DeepLesionError as exc:
            raise ViewError(400, str(exc)) from None
        number = _number
        if query.get("patient"):
            keep &= c.patient == int(number("patient", query["patient"]))
        if query.get("noisy") in ("true", "false"):
            keep &= c.noisy == (query["noisy"] == "true")
        elif query.get("noisy"):
            raise ViewError(400, "noisy: give true or false")
        if query.get("min_mm"):
            keep &= c.long_diameter_mm >= number("min_mm", query["min_mm"])
        if query.get("max_mm"):
            keep &= c.long_diameter_mm <= number("max_mm", query["max_mm"])
        if query.get("q"):
            keep &= np.char.find(c.file_name.astype(str), query["q"].strip()) >= 0
        chosen = np.flatnonzero(keep)
        sort = query.get("sort") or "line"
        if sort not in SORT_KEYS:
            raise ViewError(400, f"sort: one of {', '.join(SORT_KEYS)}")
        column = {
            "line": "row",
            "type": "lesion_type",
            "long_mm": "long_diameter_mm",
            "short_mm": "short_diameter_mm",
        }
        key = np.asarray(c.column(column.get(sort, sort)))[chosen]  # only the sorted column, only chosen rows
        order = chosen[np.argsort(key, kind="stable")]
        if query.get("order") == "desc":
            order = order[::-1]
        limit = int(number("limit", query.get("limit") or "100"))
        offset = int(number("offset", query.get("offset") or "0"))
        if not 1 <= limit <= MAX_ROWS or offset < 0:
            raise ViewError(400, f"limit must be 1-{MAX_ROWS} and offset >= 0")
        page = order[offset : offset + limit]
        return {"total": len(order), "offset": offset, "rows": [self.row(int(i)) for i in page]}

    def series(self, folder: str) -> dict[str, Any]:
        """Slice numbers on disk, spacing, image size and the rows of one series folder."""
        folder = self.check_folder(folder)
        rows = self._rows_of_folder[folder]
        first = rows[0]
        c = self.catalog
        runs = sorted({(int(c.slice_range[i][0]), int(c.slice_range[i][1])) for i in rows})
        return {
            "folder": folder,
            "patient": int(c.patient[first]),
            "study": int(c.study[first]),
            "series": int(c.series[first]),
            "slices": sorted(self.release.slice_numbers(folder)),
            "annotated_runs": [list(r) for r in runs],
            "spacing": [float(v) for v in c.spacing[first]],
            "image_size": [int(v) for v in c.image_size[first]],
            "rows": [self.row(i) for i in rows],
        }

    # pixels ------------------------------------------------------------------------------------------
    def _hu(self, folder: str, number: int) -> npt.NDArray[np.int16]:
        key = (folder, number)
        with self._lock:
            cached = self._decoded.get(key)
            if cached is not None:
                self._decoded.move_to_end(key)
                return cached
        path = self.release.path(folder, number)
        try:
            hu = self.release.read_slice(folder, number)
        except DeepLesionError as exc:
            status = 404 if not path.exists() else 422
            prefix = "" if status == 422 else "missing: "
            raise ViewError(status, f"{prefix}{exc}") from None
        with self._lock:
            self._decoded[key] = hu
            while len(self._decoded) > DECODED_SLICES:
                self._decoded.popitem(last=False)
        return hu

    def slice_png(self, folder: str, name: str, window: str | None) -> SlicePng:
        """One slice windowed to 8 bits, PNG; the ETag names the file version and the window."""
        import cv2

        from deeplesion.windowing import apply_window

        folder = self.check_folder(folder)
        number = self.check_slice(name)
        low, high = parse_window(window, (-175.0, 275.0))
        path = self.release.path(folder, number)
        hu = self._hu(folder, number)
        etag = self.slice_etag(folder, name, window)
        assert etag is not None  # the slice was just read
        pixels = apply_window(hu, (low, high), scale="uint8")
        ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        if not ok:
            raise ViewError(500, f"{path}: could not encode the windowed slice")
        return SlicePng(encoded.tobytes(), etag)

    def slice_etag(self, folder: str, name: str, window: str | None) -> str | None:
        """The ETag a slice would get, without decoding it (None when the file is absent)."""
        folder = self.check_folder(folder)
        number = self.check_slice(name)
        low, high = parse_window(window, (-175.0, 275.0))
        path = self.release.path(folder, number)
        if not path.is_file():
            return None
        stat = path.stat()
        return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}-{low:g}-{high:g}"'

    def hu_at(self, folder: str, name: str, x: str | None, y: str | None) -> dict[str, Any]:
        """The HU of one pixel (0-based column ``x`` and row ``y``)."""
        folder = self.check_folder(folder)
        number = self.check_slice(name)
        number_of = _number
        if x is None or y is None:
            raise ViewError(400, "give the pixel as ?x=COLUMN&y=ROW (0-based)")
        column, row = int(number_of("x", x)), int(number_of("y", y))
        hu = self._hu(folder, number)
        height, width = hu.shape
        if not (0 <= column < width and 0 <= row < height):
            raise ViewError(400, f"pixel ({column}, {row}) is outside the {width}x{height} slice")
        return {"folder": folder, "slice": number, "x": column, "y": row, "hu": int(hu[row, column])}

    # predictions -------------------------------------------------------------------------------------
    def _classify_predictions(self) -> dict[str, list[dict[str, Any]]]:
        """Each prediction as the official evaluation counts it, split by split, with the evaluation's
        own ground truth (noisy lesions left out), order (score, then the tie rule) and matching at
        IoU >= 0.5: ``hit`` (finds a lesion first), ``duplicate`` (covers a lesion another detection
        found first: neither hit nor false positive) or ``fp`` (covers no lesion). Predictions on slices
        that the evaluation does not score (not a key slice, or only noisy lesions) are ``unevaluated``.
        Lists are in evaluation order, best first."""
        from deeplesion.evaluate.froc import match
        from deeplesion.evaluate.run import assign, ground_truth

        assert self.predictions is not None
        p = self.predictions
        names = np.asarray(p.file_name, dtype=str)
        status = np.full(len(names), "unevaluated", dtype=object)
        # a slice's predictions are all evaluated (in their split's evaluation order) or none (by score)
        rank = np.argsort(np.argsort(-p.score, kind="stable"))
        for split in sorted({Split(int(v)) for v in self.catalog.split.tolist()}):
            mask = np.isin(names, self.catalog.filter(split=split).file_name.astype(str))
            if not mask.any():
                continue
            on_split = np.flatnonzero(mask)
            truth = ground_truth(self.catalog, split)
            detections = assign(p.take(mask), truth, lenient=True)
            events = match(
                detections.image,
                detections.boxes,
                truth.lesion_image,
                truth.lesion_boxes,
                len(truth.file_names),
            )
            found = on_split[detections.source]
            status[found] = np.where(
                events.hits > 0, "hit", np.where(events.false_positive, "fp", "duplicate")
            )
            rank[found] = np.arange(len(found))
        out: dict[str, list[dict[str, Any]]] = {}
        for j in np.argsort(rank, kind="stable"):
            out.setdefault(str(names[j]), []).append(
                {
                    "box": np.round(p.boxes[j], 2).tolist(),
                    "score": round(float(p.score[j]), 5),
                    "status": status[j],
                }
            )
        return out

    def predictions_on(self, file_name: str) -> dict[str, Any]:
        """The predictions of one slice (``PPPPPP_SS_RR_NNN.png``), best first, with their FROC status."""
        folder, _, rest = file_name.rpartition("_")
        self.check_folder(folder)
        self.check_slice(rest)
        return {
            "file_name": file_name,
            "available": self.predictions is not None,
            "source": self.predictions.source if self.predictions is not None else None,
            "predictions": self._classified.get(file_name, []),
        }

    # patients ----------------------------------------------------------------------------------------
    def patient(self, text: str) -> dict[str, Any]:
        """A patient's studies (series and rows) and tracked lesions (``deeplesion.tracking``)."""
        from deeplesion.tracking import track_lesions
        from deeplesion.tracking.response import recist_response

        number = int(_number("patient", text))
        c = self.catalog
        rows = np.flatnonzero(c.patient == number)
        if len(rows) == 0:
            raise ViewError(404, f"patient {number} has no row in {c.source or 'the annotations'}")
        result = track_lesions(c, patients=[number])
        tracks = result.tracks_of(number)
        track_of = {r: t.id for t in tracks for r in t.rows}
        studies: dict[int, dict[int, list[dict[str, Any]]]] = {}
        for i in rows.tolist():
            item = self.row(i)
            item["track"] = track_of.get(i)
            studies.setdefault(int(c.study[i]), {}).setdefault(int(c.series[i]), []).append(item)
        response = recist_response(tracks)
        return {
            "patient": number,
            "studies": [
                {
                    "study": s,
                    "series": [
                        {"series": r, "folder": items[0]["folder"], "rows": items}
                        for r, items in sorted(series.items())
                    ],
                }
                for s, series in sorted(studies.items())
            ],
            "tracks": [
                {
                    "id": t.id,
                    "type": LesionType(t.lesion_type).label,
                    "rows": list(t.rows),
                    "measurements": [
                        {
                            "study": m.study,
                            "row": m.row,
                            "long_mm": round(m.long_mm, 2),
                            "short_mm": round(m.short_mm, 2),
                        }
                        for m in t.measurements
                    ],
                }
                for t in tracks
            ],
            "links": [
                {"source": k.source, "target": k.target, "confidence": round(k.confidence, 3)}
                for k in result.links
            ],
            "response": response.to_dict() if response is not None else None,
        }

    def timeline_png(self, text: str) -> bytes:
        """The patient's timeline plot (``deeplesion track --plot``) as PNG bytes."""
        from deeplesion.tracking import track_lesions
        from deeplesion.tracking.plot import timeline_png
        from deeplesion.tracking.response import recist_response

        number = int(_number("patient", text))
        if not np.any(self.catalog.patient == number):
            raise ViewError(404, f"patient {number} has no row in {self.catalog.source or 'the annotations'}")
        tracks = track_lesions(self.catalog, patients=[number]).tracks_of(number)
        return timeline_png(tracks, recist_response(tracks))


def _number(name: str, text: str) -> float:
    """A query parameter as a finite number, else a 400 naming it."""
    try:
        value = float(text)
    except ValueError:
        raise ViewError(400, f"{name}: {text!r} is not a number") from None
    if not np.isfinite(value):
        raise ViewError(400, f"{name}: {text!r} is not a finite number")
    return value


def static_dir() -> Path:
    """The page's files (HTML, JS, CSS), packaged with the module."""
    return Path(__file__).with_name("static")
