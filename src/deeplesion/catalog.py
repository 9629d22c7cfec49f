"""Read, query and write ``DL_info.csv``, the DeepLesion annotation table (one row per lesion).

Columns are found by header name, never by position; numbers are parsed with numpy, never ``eval``.

Coordinate convention (the one place it is defined)
---------------------------------------------------
The CSV's pixel coordinates (``Measurement_coordinates``, ``Bounding_boxes``) are treated as **1-based**,
as the dataset authors' own code does (it subtracts 1 before indexing arrays). Inside this toolkit every
coordinate is a **0-based array coordinate** (x = column, y = row): ``project = csv - CSV_PIXEL_ORIGIN``.
:attr:`Catalog.recist` and :attr:`Catalog.box` are in the project frame; :attr:`Catalog.recist_csv` and
:attr:`Catalog.box_csv` keep the CSV frame, and :func:`write_dl_info` can emit either. Ground-truth boxes
are never clipped (8 real boxes extend past the image edge).

Slice numbers (``Key_slice_index``, ``Slice_range`` and the ``NNN`` of file names) stay 1-based, as in the
release, and are called ``slice_number``/``key_slice``; 0-based positions are called ``index``.
"""

from __future__ import annotations

import csv
import enum
import gzip
import hashlib
import io
import itertools
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from deeplesion.errors import AnnotationError, DataRootError, UsageError
from deeplesion.findings import Finding, make_finding
from deeplesion.names import folder_of, series_folder, slice_path

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "File_name",
    "Patient_index",
    "Study_index",
    "Series_ID",
    "Key_slice_index",
    "Measurement_coordinates",
    "Bounding_boxes",
    "Lesion_diameters_Pixel_",
    "Normalized_lesion_location",
    "Coarse_lesion_type",
    "Possibly_noisy",
    "Slice_range",
    "Spacing_mm_px_",
    "Image_size",
    "DICOM_windows",
    "Patient_gender",
    "Patient_age",
    "Train_Val_Test",
)
"""The 18 columns of ``DL_info.csv``, in the official order."""

CSV_PIXEL_ORIGIN = 1.0
"""The CSV pixel frame is 1-based: ``project (0-based) = csv - CSV_PIXEL_ORIGIN``."""

BOX_PADDING_PX = 5.0
"""``Bounding_boxes`` is the extent of the four RECIST endpoints padded by this many pixels per side."""

OFFICIAL_SIZE_BYTES = 8_479_888
OFFICIAL_GIT_BLOB_SHA1 = "f954fe34176b3443f0d89b21e21367754637aa43"
OFFICIAL_ROWS = 32_735

DEFAULT_FILE_NAME = "DL_info.csv"
ROOT_ENV_VAR = "DEEPLESION_ROOT"


class Split(enum.IntEnum):
    """``Train_Val_Test``: the patient-level split."""

    TRAIN = 1
    VAL = 2
    TEST = 3

    @property
    def label(self) -> str:
        """``train``, ``val`` or ``test``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | Split) -> Split:
        """Accept ``train``/``val``/``validation``/``test``, ``1``/``2``/``3`` or a :class:`Split`."""
        if isinstance(value, Split):
            return value
        text = str(value).strip().lower()
        aliases = {"1": "train", "2": "val", "3": "test", "validation": "val"}
        text = aliases.get(text, text)
        for member in cls:
            if member.label == text:
                return member
        raise UsageError(f"unknown split {value!r}; use train, val or test")


class LesionType(enum.IntEnum):
    """``Coarse_lesion_type``: 8 coarse body-part types, -1 (``unknown``) on every training row."""

    UNKNOWN = -1
    BONE = 1
    ABDOMEN = 2
    MEDIASTINUM = 3
    LIVER = 4
    LUNG = 5
    KIDNEY = 6
    SOFT_TISSUE = 7
    PELVIS = 8

    @property
    def label(self) -> str:
        """Lower-case name, for example ``soft_tissue``."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int | LesionType) -> LesionType:
        """Accept a name (``liver``, ``soft tissue``, ``soft-tissue``), a code (``4``) or a member."""
        if isinstance(value, LesionType):
            return value
        text = str(value).strip().lower().replace("-", "_").replace(" ", "_")
        for member in cls:
            if member.label == text or str(member.value) == text:
                return member
        names = ", ".join(m.label for m in cls)
        raise UsageError(f"unknown lesion type {value!r}; use one of: {names}")


class Strictness(enum.StrEnum):
    """What loading does with a malformed row."""

    RAISE = "raise"
    """Stop with an :class:`~deeplesion.errors.AnnotationError` naming the first bad rows (default)."""
    WARN = "warn"
    """Log a warning per bad row and skip it."""
    IGNORE = "ignore"
    """Skip bad rows silently (they are still listed in :attr:`Catalog.load_findings`)."""


@dataclass(frozen=True, slots=True, eq=False)
class Lesion:
    """One row of ``DL_info.csv``, typed. Coordinates are 0-based array coordinates (project frame).

    Attributes
    ----------
    file_name
        ``PPPPPP_SS_RR_NNN.png``.
    patient, study, series
        ``Patient_index``, ``Study_index``, ``Series_ID``.
    key_slice
        ``Key_slice_index``: the 1-based slice number of the key slice.
    recist
        (4, 2) float64, pixels, project frame: long-axis endpoints, then short-axis endpoints, each (x, y).
    box
        (4,) float64, pixels, project frame, ``x1, y1, x2, y2`` (never clipped).
    diameters_px
        (long, short) in pixels, as the CSV gives them.
    location
        Normalized (x, y, z) body position in [0, 1].
    lesion_type
        The coarse type (``UNKNOWN`` on training rows).
    noisy
        ``Possibly_noisy`` == 1.
    slice_range
        (first, last) 1-based slice numbers, inclusive, of the run holding the key slice.
    spacing
        (x, y, z) in mm: in-plane pixel spacing and slice interval.
    image_size
        (width, height) in pixels.
    window
        DICOM window (low, high) in HU.
    sex
        ``M`` or ``F`` (as written).
    age
        Years, or None when the cell is empty or ``NaN``.
    split
        The split.
    row
        0-based data row in the file it was read from.
    lesion_index
        The official lesion index (row of the complete official file), or None when the file read is not
        the official one.
    """

    file_name: str
    patient: int
    study: int
    series: int
    key_slice: int
    recist: npt.NDArray[np.float64]
    box: npt.NDArray[np.float64]
    diameters_px: tuple[float, float]
    location: tuple[float, float, float]
    lesion_type: LesionType
    noisy: bool
    slice_range: tuple[int, int]
    spacing: tuple[float, float, float]
    image_size: tuple[int, int]
    window: tuple[float, float]
    sex: str
    age: float | None
    split: Split
    row: int
    lesion_index: int | None

    def __repr__(self) -> str:
        box = ", ".join(f"{v:.1f}" for v in self.box)
        return (
            f"Lesion({self.file_name}, row {self.row}, {self.lesion_type.label}, {self.split.label}, "
            f"{self.long_diameter_mm:.1f} x {self.short_diameter_mm:.1f} mm, box [{box}] px"
            + (", possibly noisy)" if self.noisy else ")")
        )

    @property
    def folder(self) -> str:
        """The series folder name, ``PPPPPP_SS_RR``."""
        return series_folder(self.patient, self.study, self.series)

    @property
    def key_slice_path(self) -> str:
        """Release-relative path of the key slice, ``Images_png/<folder>/<NNN>.png``."""
        return slice_path(self.folder, self.key_slice)

    @property
    def long_diameter_mm(self) -> float:
        """Long (RECIST) diameter in mm (pixels x in-plane spacing)."""
        return self.diameters_px[0] * self.spacing[0]

    @property
    def short_diameter_mm(self) -> float:
        """Short diameter in mm."""
        return self.diameters_px[1] * self.spacing[0]

    @property
    def box_area_px(self) -> float:
        """Box area in square pixels."""
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))

    @property
    def slice_interval_mm(self) -> float:
        """Distance between neighbouring slices of the run, mm."""
        return self.spacing[2]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: every field (coordinates in the project frame) plus the derived values."""
        return {
            "file_name": self.file_name,
            "patient": self.patient,
            "study": self.study,
            "series": self.series,
            "key_slice": self.key_slice,
            "key_slice_path": self.key_slice_path,
            "recist": self.recist.tolist(),
            "box": self.box.tolist(),
            "diameters_px": list(self.diameters_px),
            "long_diameter_mm": round(self.long_diameter_mm, 4),
            "short_diameter_mm": round(self.short_diameter_mm, 4),
            "location": list(self.location),
            "lesion_type": self.lesion_type.label,
            "noisy": self.noisy,
            "slice_range": list(self.slice_range),
            "spacing": list(self.spacing),
            "image_size": list(self.image_size),
            "window": list(self.window),
            "sex": self.sex,
            "age": self.age,
            "split": self.split.label,
            "row": self.row,
            "lesion_index": self.lesion_index,
        }


# --- parsing ------------------------------------------------------------------------------------------

# column -> (attribute, number of values, dtype); the single-value text columns are handled apart.
_NUMERIC: dict[str, tuple[str, int, type]] = {
    "Patient_index": ("patient", 1, np.int64),
    "Study_index": ("study", 1, np.int64),
    "Series_ID": ("series", 1, np.int64),
    "Key_slice_index": ("key_slice", 1, np.int64),
    "Measurement_coordinates": ("recist_csv", 8, np.float64),
    "Bounding_boxes": ("box_csv", 4, np.float64),
    "Lesion_diameters_Pixel_": ("diameters_px", 2, np.float64),
    "Normalized_lesion_location": ("location", 3, np.float64),
    "Coarse_lesion_type": ("lesion_type", 1, np.int64),
    "Possibly_noisy": ("noisy", 1, np.int64),
    "Slice_range": ("slice_range", 2, np.int64),
    "Spacing_mm_px_": ("spacing", 3, np.float64),
    "Image_size": ("image_size", 2, np.int64),
    "DICOM_windows": ("window", 2, np.float64),
    "Train_Val_Test": ("split", 1, np.int64),
}
_ALLOWED: dict[str, frozenset[int]] = {
    "Coarse_lesion_type": frozenset(int(t) for t in LesionType),
    "Possibly_noisy": frozenset({0, 1}),
    "Train_Val_Test": frozenset(int(s) for s in Split),
}


@dataclass(frozen=True, slots=True)
class _Text:
    """A decoded annotation file: its text, the label used in messages, and whether it is the official one."""

    text: str
    label: str
    official: bool


def _read_text(path: Path) -> _Text:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except IsADirectoryError:
        raise AnnotationError(f"{path}: is a folder; pass the DL_info.csv file inside it") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise AnnotationError(
                f"{path}: looks gzip-compressed but cannot be decompressed ({exc})"
            ) from None
    official = len(raw) == OFFICIAL_SIZE_BYTES and git_blob_sha1(raw) == OFFICIAL_GIT_BLOB_SHA1
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationError(
            f"{path}: not UTF-8 text (byte {exc.start}); is this really DL_info.csv?"
        ) from None
    return _Text(text=text, label=str(path), official=official)


def git_blob_sha1(data: bytes) -> str:
    """Git's blob id of ``data``: sha1 of ``b"blob <size>\\0" + data`` (identifies the official file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _parse_numeric(
    cells: list[str],
    count: int,
    dtype: type,
    column: str,
    label: str,
    lines: list[int],
    bad: dict[int, Finding],
) -> npt.NDArray[Any]:
    """Parse one column of ``count`` comma-separated numbers per cell into an (N,) or (N, count) array.

    The fast path parses the whole column in one numpy call; only when it fails does it go cell by cell
    to name the bad rows (recorded in ``bad``, keyed by row, with the row's file line from ``lines``;
    their values are left as 0). One bad cell spoils its own row only.
    """
    n = len(cells)
    shape: tuple[int, ...] = (n,) if count == 1 else (n, count)
    try:
        flat: npt.NDArray[Any] = np.array(",".join(cells).split(",") if n else [], dtype=dtype)
        # A cell with one value too many and another with one too few would keep the total right, so
        # check every cell's comma count too (map keeps this in C: about 10 ms for the 29k-row union).
        if flat.size == n * count and (
            count == 1 or set(map(str.count, cells, itertools.repeat(","))) <= {count - 1}
        ):
            return flat.reshape(shape)
    except ValueError:
        pass
    out: npt.NDArray[Any] = np.zeros(shape, dtype=dtype)
    for i, cell in enumerate(cells):
        parts = cell.split(",")
        if len(parts) != count:
            bad.setdefault(
                i,
                make_finding(
                    "value-count",
                    f"{column} needs {count} comma-separated value(s), found {len(parts)}",
                    file=label,
                    line=lines[i],
                    column=column,
                    value=cell,
                ),
            )
            continue
        try:
            # reshape: a one-value cell goes into a scalar element (numpy 2 refuses a 1-element array)
            out[i] = np.array(parts, dtype=dtype).reshape(shape[1:])
        except ValueError:
            kind = "integer" if dtype is np.int64 else "number"
            bad.setdefault(
                i,
                make_finding(
                    "value-invalid",
                    f"{column} must hold {kind}s, found {cell!r}",
                    file=label,
                    line=lines[i],
                    column=column,
                    value=cell,
                ),
            )
    return out


def _parse_age(cells: list[str]) -> tuple[npt.NDArray[np.float64], list[int]]:
    """Ages in years (NaN where empty or ``NaN``), and the rows whose cell is not a number."""
    try:
        return np.array([c if c.strip() else "nan" for c in cells], dtype=np.float64), []
    except ValueError:
        pass
    out = np.full(len(cells), np.nan)
    invalid = []
    for i, cell in enumerate(cells):
        try:
            out[i] = float(cell) if cell.strip() else math.nan
        except ValueError:
            invalid.append(i)
    return out, invalid


class Catalog:
    """A parsed ``DL_info.csv``: typed numpy columns, one :class:`Lesion` record per row, and queries.

    Build one with :func:`load_catalog`. Columns are read-only numpy arrays of length N (rows):

    - ``file_name``, ``sex``, ``age_text``: (N,) object arrays of str;
    - ``patient``, ``study``, ``series``, ``key_slice``: (N,) int64;
    - ``recist`` / ``recist_csv``: (N, 4, 2) float64 pixels, project / CSV frame;
    - ``box`` / ``box_csv``: (N, 4) float64 pixels ``x1, y1, x2, y2``, project / CSV frame;
    - ``diameters_px``: (N, 2) float64 (long, short); ``location``: (N, 3) float64;
    - ``lesion_type``, ``split``: (N,) int64 codes of :class:`LesionType` and :class:`Split`;
    - ``noisy``: (N,) bool; ``slice_range``: (N, 2) int64; ``spacing``: (N, 3) float64 mm (x, y, z);
    - ``image_size``: (N, 2) int64 (width, height); ``window``: (N, 2) float64 HU (low, high);
    - ``age``: (N,) float64 years, NaN when missing;
    - ``row``: (N,) int64, 0-based row in the source file; ``lesion_index``: (N,) int64, -1 when unknown.
    """

    _ARRAYS = (
        "file_name",
        "patient",
        "study",
        "series",
        "key_slice",
        "recist_csv",
        "box_csv",
        "diameters_px",
        "location",
        "lesion_type",
        "noisy",
        "slice_range",
        "spacing",
        "image_size",
        "window",
        "sex",
        "age",
        "age_text",
        "split",
        "row",
        "lesion_index",
        "extra",
    )

    def __init__(
        self,
        columns: dict[str, npt.NDArray[Any]],
        *,
        source: str | None = None,
        official: bool = False,
        extra_columns: Sequence[str] = (),
        load_findings: Sequence[Finding] = (),
    ) -> None:
        n = len(columns["file_name"])
        for name in self._ARRAYS:
            if name not in columns:
                raise ValueError(f"Catalog needs column array {name!r}")
            if len(columns[name]) != n:
                raise ValueError(f"column {name!r} has {len(columns[name])} rows, expected {n}")
            columns[name].setflags(write=False)
        self._c = columns
        self.source = source
        """The file the rows were read from (None when built in memory)."""
        self.official = official
        """Whether the rows are the complete official ``DL_info.csv`` (so ``lesion_index`` is known)."""
        self.extra_columns = tuple(extra_columns)
        """Header names beyond the 18 official columns, kept in ``extra`` and written back."""
        self.load_findings = tuple(load_findings)
        """Problems met while reading (extra columns, skipped rows)."""
        self._records: list[Lesion | None] = [None] * n
        self._groups: dict[str, npt.NDArray[np.int64]] | None = None

    # columns -------------------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> npt.NDArray[Any]:
        # Only reached when normal lookup fails: expose the column arrays as attributes.
        c = self.__dict__.get("_c")
        if c is not None and name in c:
            return c[name]  # type: ignore[no-any-return]
        raise AttributeError(f"Catalog has no attribute {name!r}")

    @property
    def recist(self) -> npt.NDArray[np.float64]:
        """(N, 4, 2) float64 RECIST endpoints in the project frame (0-based)."""
        return self._c["recist_csv"].reshape(-1, 4, 2) - CSV_PIXEL_ORIGIN

    @property
    def box(self) -> npt.NDArray[np.float64]:
        """(N, 4) float64 boxes ``x1, y1, x2, y2`` in the project frame (0-based, never clipped)."""
        return self._c["box_csv"] - CSV_PIXEL_ORIGIN

    @property
    def long_diameter_mm(self) -> npt.NDArray[np.float64]:
        """(N,) float64 long diameter in mm."""
        return self._c["diameters_px"][:, 0] * self._c["spacing"][:, 0]  # type: ignore[no-any-return]

    @property
    def short_diameter_mm(self) -> npt.NDArray[np.float64]:
        """(N,) float64 short diameter in mm."""
        return self._c["diameters_px"][:, 1] * self._c["spacing"][:, 0]  # type: ignore[no-any-return]

    @property
    def slice_interval_mm(self) -> npt.NDArray[np.float64]:
        """(N,) float64 slice interval in mm."""
        return self._c["spacing"][:, 2]

    @property
    def folder(self) -> npt.NDArray[np.object_]:
        """(N,) object array of series folder names ``PPPPPP_SS_RR``."""
        return np.array([folder_of(f) for f in self._c["file_name"]], dtype=object)

    def column(self, name: str) -> npt.NDArray[Any]:
        """A column array by attribute name (see the class docstring)."""
        if name in ("recist", "box", "long_diameter_mm", "short_diameter_mm", "slice_interval_mm", "folder"):
            return getattr(self, name)  # type: ignore[no-any-return]
        if name not in self._c:
            raise UsageError(f"no column {name!r}")
        return self._c[name]

    # records -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, position: int) -> Lesion: ...
    @overload
    def __getitem__(self, position: slice) -> Catalog: ...
    def __getitem__(self, position: int | slice) -> Lesion | Catalog:
        """The lesion at a row position, or a new :class:`Catalog` of a slice of rows (as for a list)."""
        if isinstance(position, slice):
            return self.take(np.arange(len(self))[position])
        record = self._records[position]
        if record is None:
            record = self._make_record(position if position >= 0 else len(self) + position)
            self._records[position] = record
        return record

    def __iter__(self) -> Iterator[Lesion]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"<Catalog of {len(self)} lesions on {self.num_key_slices} key slices{where}>"

    def _make_record(self, i: int) -> Lesion:
        c = self._c
        recist = (c["recist_csv"][i].reshape(4, 2) - CSV_PIXEL_ORIGIN).copy()
        box = (c["box_csv"][i] - CSV_PIXEL_ORIGIN).copy()
        recist.setflags(write=False)
        box.setflags(write=False)
        age = float(c["age"][i])
        lesion_index = int(c["lesion_index"][i])
        return Lesion(
            file_name=str(c["file_name"][i]),
            patient=int(c["patient"][i]),
            study=int(c["study"][i]),
            series=int(c["series"][i]),
            key_slice=int(c["key_slice"][i]),
            recist=recist,
            box=box,
            diameters_px=(float(c["diameters_px"][i, 0]), float(c["diameters_px"][i, 1])),
            location=(float(c["location"][i, 0]), float(c["location"][i, 1]), float(c["location"][i, 2])),
            lesion_type=LesionType(int(c["lesion_type"][i])),
            noisy=bool(c["noisy"][i]),
            slice_range=(int(c["slice_range"][i, 0]), int(c["slice_range"][i, 1])),
            spacing=(float(c["spacing"][i, 0]), float(c["spacing"][i, 1]), float(c["spacing"][i, 2])),
            image_size=(int(c["image_size"][i, 0]), int(c["image_size"][i, 1])),
            window=(float(c["window"][i, 0]), float(c["window"][i, 1])),
            sex=str(c["sex"][i]),
            age=None if math.isnan(age) else age,
            split=Split(int(c["split"][i])),
            row=int(c["row"][i]),
            lesion_index=None if lesion_index < 0 else lesion_index,
        )

    # queries -------------------------------------------------------------------------------------------
    @property
    def num_key_slices(self) -> int:
        """Number of distinct key slices (several lesions can share one)."""
        return len(set(self._c["file_name"].tolist()))

    def take(self, positions: npt.ArrayLike) -> Catalog:
        """A new catalog with the rows at ``positions`` (int indices or a boolean mask), in that order."""
        idx = np.asarray(positions)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        columns = {name: arr[idx] for name, arr in self._c.items()}
        sub = Catalog(
            columns,
            source=self.source,
            official=self.official,
            extra_columns=self.extra_columns,
            load_findings=self.load_findings,
        )
        return sub

    def filter(
        self,
        *,
        split: str | int | Split | Iterable[str | int | Split] | None = None,
        patient: int | Iterable[int] | None = None,
        study: int | Iterable[int] | None = None,
        series: int | Iterable[int] | None = None,
        lesion_type: str | int | LesionType | Iterable[str | int | LesionType] | None = None,
        noisy: bool | None = None,
        min_long_diameter_mm: float | None = None,
        max_long_diameter_mm: float | None = None,
        min_slice_interval_mm: float | None = None,
        max_slice_interval_mm: float | None = None,
        file_names: Iterable[str] | None = None,
    ) -> Catalog:
        """Rows matching every given condition (None = no condition), in their current order.

        Parameters
        ----------
        split
            One split or several (names ``train``/``val``/``test``, codes or :class:`Split`).
        patient, study, series
            One index or several.
        lesion_type
            One type or several (names such as ``liver``, codes or :class:`LesionType`).
        noisy
            True keeps only possibly-noisy rows, False drops them.
        min_long_diameter_mm, max_long_diameter_mm
            Inclusive bounds on the long diameter, mm.
        min_slice_interval_mm, max_slice_interval_mm
            Inclusive bounds on the slice interval, mm.
        file_names
            Key-slice file names to keep.
        """
        c = self._c
        mask = np.ones(len(self), dtype=bool)

        def many(value: Any) -> list[Any]:
            return [value] if isinstance(value, str | int) else list(value)

        if split is not None:
            mask &= np.isin(c["split"], [int(Split.parse(s)) for s in many(split)])
        if lesion_type is not None:
            mask &= np.isin(c["lesion_type"], [int(LesionType.parse(t)) for t in many(lesion_type)])
        for name, value in (("patient", patient), ("study", study), ("series", series)):
            if value is not None:
                mask &= np.isin(c[name], [int(v) for v in many(value)])
        if noisy is not None:
            mask &= c["noisy"] == noisy
        long_mm = self.long_diameter_mm
        if min_long_diameter_mm is not None:
            mask &= long_mm >= min_long_diameter_mm
        if max_long_diameter_mm is not None:
            mask &= long_mm <= max_long_diameter_mm
        if min_slice_interval_mm is not None:
            mask &= c["spacing"][:, 2] >= min_slice_interval_mm
        if max_slice_interval_mm is not None:
            mask &= c["spacing"][:, 2] <= max_slice_interval_mm
        if file_names is not None:
            mask &= np.isin(c["file_name"], list(file_names))
        return self.take(mask)

    def key_slice_groups(self) -> dict[str, npt.NDArray[np.int64]]:
        """Row positions grouped by key-slice file name, in order of first appearance.

        Returns
        -------
        dict
            ``file_name`` -> (K,) int64 positions into this catalog (K >= 1 lesions on that slice).
        """
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(self._c["file_name"].tolist()):
            groups.setdefault(name, []).append(i)
        return {name: np.array(rows, dtype=np.int64) for name, rows in groups.items()}

    def lesions_on(self, file_name: str) -> list[Lesion]:
        """The lesions annotated on one key slice (empty when the slice is not a key slice)."""
        if self._groups is None:
            self._groups = self.key_slice_groups()
        return [self[int(i)] for i in self._groups.get(file_name, ())]


def concat(catalogs: Sequence[Catalog]) -> Catalog:
    """Rows of several catalogs, one after the other (``row`` keeps each row's place in its own file)."""
    if not catalogs:
        raise UsageError("concat needs at least one catalog")
    extras = catalogs[0].extra_columns
    if any(c.extra_columns != extras for c in catalogs):
        extras = ()
    columns: dict[str, npt.NDArray[Any]] = {}
    for name in Catalog._ARRAYS:
        parts = [c._c[name] for c in catalogs]
        if name == "extra" and not extras:
            columns[name] = np.empty((sum(len(p) for p in parts), 0), dtype=object)
        else:
            columns[name] = np.concatenate(parts)
    sources = list(dict.fromkeys(c.source or "(memory)" for c in catalogs))
    return Catalog(
        columns,
        source=" + ".join(sources),
        official=len(catalogs) == 1 and catalogs[0].official,
        extra_columns=extras,
        load_findings=[f for c in catalogs for f in c.load_findings],
    )


def parse_dl_info(
    text: str, *, label: str = "DL_info.csv", official: bool = False, strictness: Strictness | str = "raise"
) -> Catalog:
    """Parse the text of a ``DL_info.csv`` file.

    Parameters
    ----------
    text
        The whole file as text (any line endings; a BOM is removed).
    label
        How messages name the file.
    official
        Whether the text is the complete official file (then ``lesion_index`` = row).
    strictness
        ``raise`` (default), ``warn`` or ``ignore``: what to do with malformed rows.

    Raises
    ------
    AnnotationError
        An empty file, a missing column, or (with ``raise``) a malformed row.
    """
    strictness = Strictness(strictness)
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise AnnotationError(f"{label}: the file is empty; expected a header starting with 'File_name'")
    header = [h.strip() for h in header]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise AnnotationError(
            f"{label}: column(s) {', '.join(missing)} missing from the header; a DL_info.csv header is: "
            + ",".join(COLUMNS)
        )
    findings: list[Finding] = []
    extra_columns = [h for h in header if h not in COLUMNS]
    for name in extra_columns:
        findings.append(
            make_finding(
                "column-extra", f"extra column {name!r} is kept as is", file=label, line=1, column=name
            )
        )
    position = {name: header.index(name) for name in header}

    bad: dict[int, Finding] = {}
    rows: list[list[str]] = []
    lines: list[int] = []  # the file line of each row (blank lines and quoted line breaks counted)
    for cells in reader:
        if not cells:
            continue  # a blank line (for example a trailing one) is not a row
        if len(cells) != len(header):
            bad[len(rows)] = make_finding(
                "row-length",
                f"row has {len(cells)} cells, the header has {len(header)}",
                file=label,
                line=reader.line_num,
            )
            cells = (cells + [""] * len(header))[: len(header)]
        rows.append(cells)
        lines.append(reader.line_num)
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(header)

    def cells_of(name: str) -> list[str]:
        return list(cols[position[name]])

    columns: dict[str, npt.NDArray[Any]] = {}
    for name, (attr, count, dtype) in _NUMERIC.items():
        arr = _parse_numeric(cells_of(name), count, dtype, name, label, lines, bad)
        allowed = _ALLOWED.get(name)
        if allowed is not None:
            for j in np.flatnonzero(~np.isin(arr, list(allowed))).tolist():
                bad.setdefault(
                    j,
                    make_finding(
                        "value-invalid",
                        f"{name} must be one of {sorted(allowed)}, found {arr[j]}",
                        file=label,
                        line=lines[j],
                        column=name,
                        value=str(arr[j]),
                    ),
                )
        columns[attr] = arr
    columns["noisy"] = columns["noisy"].astype(bool)
    columns["file_name"] = np.array(cells_of("File_name"), dtype=object)
    columns["sex"] = np.array(cells_of("Patient_gender"), dtype=object)
    age_text = cells_of("Patient_age")
    columns["age"], invalid_age = _parse_age(age_text)
    for i in invalid_age:
        bad.setdefault(
            i,
            make_finding(
                "value-invalid",
                f"Patient_age must be a number, empty or NaN, found {age_text[i]!r}",
                file=label,
                line=lines[i],
                column="Patient_age",
                value=age_text[i],
            ),
        )
    columns["age_text"] = np.array(age_text, dtype=object)
    columns["row"] = np.arange(n, dtype=np.int64)
    columns["lesion_index"] = np.arange(n, dtype=np.int64) if official else np.full(n, -1, dtype=np.int64)
    extra = np.empty((n, len(extra_columns)), dtype=object)
    for j, name in enumerate(extra_columns):
        extra[:, j] = cells_of(name)
    columns["extra"] = extra

    if bad:
        ordered = [bad[i] for i in sorted(bad)]
        if strictness is Strictness.RAISE:
            shown = "\n".join(f"  line {f.line}: {f.message}" for f in ordered[:5])
            more = f"\n  ... and {len(ordered) - 5} more" if len(ordered) > 5 else ""
            raise AnnotationError(
                f"{label}: {len(ordered)} malformed row(s):\n{shown}{more}\n"
                "Fix the file, or load with strictness 'warn' or 'ignore' to skip such rows."
            )
        if strictness is Strictness.WARN:
            for f in ordered:
                log.warning("%s:%s: %s; row skipped", label, f.line, f.message)
        findings.extend(ordered)
        keep = np.ones(n, dtype=bool)
        keep[list(bad)] = False
        columns = {name: arr[keep] for name, arr in columns.items()}
    return Catalog(
        columns, source=label, official=official, extra_columns=extra_columns, load_findings=findings
    )


def load_catalog(
    annotations: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    strictness: Strictness | str = "raise",
) -> Catalog:
    """Load one or several ``DL_info.csv`` files (plain, gzip-compressed, with BOM or CRLF).

    Parameters
    ----------
    annotations
        A file, several files (concatenated in order), or None for ``DL_info.csv`` under the data root.
    root
        The data root (used when ``annotations`` is None); default ``$DEEPLESION_ROOT``.
    strictness
        ``raise`` (default), ``warn`` or ``ignore``: what to do with malformed rows.

    Raises
    ------
    AnnotationError
        The file is unreadable, empty, lacks a column, or (with ``raise``) has a malformed row.
    DataRootError
        ``annotations`` is None and no data root is set.
    """
    if annotations is None:
        paths = [resolve_root(root) / DEFAULT_FILE_NAME]
    elif isinstance(annotations, str | os.PathLike):
        paths = [Path(annotations)]
    else:
        paths = [Path(p) for p in annotations]
    catalogs = []
    for path in paths:
        decoded = _read_text(path)
        catalogs.append(
            parse_dl_info(decoded.text, label=decoded.label, official=decoded.official, strictness=strictness)
        )
    return catalogs[0] if len(catalogs) == 1 else concat(catalogs)


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``root`` if given, else ``$DEEPLESION_ROOT``.

    Raises
    ------
    DataRootError
        Neither is set, or the folder does not exist.
    """
    if root is None:
        env = os.environ.get(ROOT_ENV_VAR)
        if not env:
            raise DataRootError(
                "no data root: pass `root` (or `annotations`), or set the environment variable "
                f"{ROOT_ENV_VAR} to the folder holding DL_info.csv and Images_png/"
            )
        root = env
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataRootError(f"data root {path} does not exist or is not a folder")
    return path


# --- writing ------------------------------------------------------------------------------------------


def format_number(value: float | int) -> str:
    """A number as the official file writes it: shortest round-trip text, integers without ``.0``.

    ``5.0 -> "5"``, ``0.859375 -> "0.859375"``, ``-177.5 -> "-177.5"``. Lossless for any float64.
    """
    if isinstance(value, int | np.integer):
        return str(int(value))
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _join(values: npt.NDArray[Any]) -> str:
    return ", ".join(format_number(v) for v in values.tolist())


def format_rows(catalog: Catalog, *, frame: str = "csv") -> list[list[str]]:
    """The rows of ``catalog`` as CSV cells (official header order, then the extra columns).

    Parameters
    ----------
    frame
        ``csv`` writes coordinates in the CSV's 1-based pixel frame (byte-identical to the source);
        ``project`` writes the 0-based project frame.
    """
    if frame not in ("csv", "project"):
        raise UsageError(f"unknown coordinate frame {frame!r}; use csv or project")
    c = catalog._c
    shift = 0.0 if frame == "csv" else CSV_PIXEL_ORIGIN
    recist = c["recist_csv"] if frame == "csv" else c["recist_csv"] - shift
    box = c["box_csv"] if frame == "csv" else c["box_csv"] - shift
    out = []
    for i in range(len(catalog)):
        out.append(
            [
                str(c["file_name"][i]),
                str(c["patient"][i]),
                str(c["study"][i]),
                str(c["series"][i]),
                str(c["key_slice"][i]),
                _join(recist[i]),
                _join(box[i]),
                _join(c["diameters_px"][i]),
                _join(c["location"][i]),
                str(c["lesion_type"][i]),
                str(int(c["noisy"][i])),
                _join(c["slice_range"][i]),
                _join(c["spacing"][i]),
                _join(c["image_size"][i]),
                _join(c["window"][i]),
                str(c["sex"][i]),
                str(c["age_text"][i]),
                str(c["split"][i]),
                *[str(v) for v in c["extra"][i].tolist()],
            ]
        )
    return out


def dl_info_text(catalog: Catalog, *, frame: str = "csv") -> str:
    """The catalog as ``DL_info.csv`` text (LF line endings, minimal quoting, as the release has it)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([*COLUMNS, *catalog.extra_columns])
    writer.writerows(format_rows(catalog, frame=frame))
    return buffer.getvalue()


def write_dl_info(
    catalog: Catalog, path: str | os.PathLike[str], *, frame: str = "csv", force: bool = False
) -> Path:
    """Write ``catalog`` as a ``DL_info.csv`` file (atomically: a temporary name, then a rename).

    Parameters
    ----------
    frame
        ``csv`` (default, the release's 1-based frame) or ``project`` (0-based).
    force
        Replace an existing file.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``force`` is False.
    """
    from deeplesion.io import atomic_write_bytes

    return atomic_write_bytes(Path(path), dl_info_text(catalog, frame=frame).encode("utf-8"), force=force)


def from_lesions(lesions: Sequence[Lesion], *, ages: Sequence[str] | None = None) -> Catalog:
    """Build a catalog from :class:`Lesion` records (for example a synthetic release).

    ``ages`` gives the exact ``Patient_age`` text per row; by default ages are written as numbers and a
    missing age as ``NaN``.
    """
    n = len(lesions)
    age_text = (
        list(ages)
        if ages is not None
        else ["NaN" if lesion.age is None else format_number(lesion.age) for lesion in lesions]
    )

    def arr(get: Callable[[Lesion], Any], dtype: Any, width: int = 0) -> npt.NDArray[Any]:
        a = np.array([get(x) for x in lesions], dtype=dtype)
        return a.reshape((n, width) if width else (n,))

    columns: dict[str, npt.NDArray[Any]] = {
        "file_name": arr(lambda x: x.file_name, object),
        "patient": arr(lambda x: x.patient, np.int64),
        "study": arr(lambda x: x.study, np.int64),
        "series": arr(lambda x: x.series, np.int64),
        "key_slice": arr(lambda x: x.key_slice, np.int64),
        "recist_csv": arr(lambda x: np.asarray(x.recist).ravel() + CSV_PIXEL_ORIGIN, np.float64, 8),
        "box_csv": arr(lambda x: np.asarray(x.box) + CSV_PIXEL_ORIGIN, np.float64, 4),
        "diameters_px": arr(lambda x: x.diameters_px, np.float64, 2),
        "location": arr(lambda x: x.location, np.float64, 3),
        "lesion_type": arr(lambda x: int(x.lesion_type), np.int64),
        "noisy": arr(lambda x: x.noisy, bool),
        "slice_range": arr(lambda x: x.slice_range, np.int64, 2),
        "spacing": arr(lambda x: x.spacing, np.float64, 3),
        "image_size": arr(lambda x: x.image_size, np.int64, 2),
        "window": arr(lambda x: x.window, np.float64, 2),
        "sex": arr(lambda x: x.sex, object),
        "age": arr(lambda x: math.nan if x.age is None else x.age, np.float64),
        "age_text": np.array(age_text, dtype=object),
        "split": arr(lambda x: int(x.split), np.int64),
        "row": np.arange(n, dtype=np.int64),
        "lesion_index": np.full(n, -1, dtype=np.int64),
        "extra": np.empty((n, 0), dtype=object),
    }
    return Catalog(columns, source=None)
