"""The records of the annotation table: one typed :class:`Lesion` per ``DL_info.csv`` row, its enums, and
the coordinate convention.

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

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from deeplesion.errors import UsageError
from deeplesion.names import series_folder, slice_path

CSV_PIXEL_ORIGIN = 1.0
"""The CSV pixel frame is 1-based: ``project (0-based) = csv - CSV_PIXEL_ORIGIN``."""

BOX_PADDING_PX = 5.0
"""``Bounding_boxes`` is the extent of the four RECIST endpoints padded by this many pixels per side."""


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
        """A JSON-ready dict: every field (coordinates in the project frame), then the derived values
        ``key_slice_path``, ``long_diameter_mm`` and ``short_diameter_mm``."""
        out = {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["key_slice_path"] = self.key_slice_path
        out["long_diameter_mm"] = round(self.long_diameter_mm, 4)
        out["short_diameter_mm"] = round(self.short_diameter_mm, 4)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Split | LesionType):
        return value.label
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value
