"""The 18 columns of ``DL_info.csv``, each declared once: its header, the catalog array that holds it,
how its cells parse, which :class:`~deeplesion.catalog.records.Lesion` field it becomes, and back.

Everything else is derived from :data:`SCHEMA`: the header (:data:`COLUMNS`), the catalog's arrays, the
records, the parser, the writer and :func:`~deeplesion.catalog.dl_info.from_lesions`. A new column (or a
changed one) is one line here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from deeplesion.catalog.records import CSV_PIXEL_ORIGIN, LesionType, Split

Kind = Literal["text", "int", "float", "age"]


def _same(value: Any) -> Any:
    return value


def _frozen(array: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class Column:
    """One ``DL_info.csv`` column.

    Attributes
    ----------
    header
        The name in the file's header.
    attr
        The catalog array: (N,) for one value per cell, (N, width) for several.
    kind
        ``text`` (kept as str), ``int`` or ``float`` (``width`` comma-separated numbers), ``age`` (a
        number, empty or ``NaN``; its exact text is kept too, so files are written back byte for byte).
    field
        The :class:`Lesion` field it becomes.
    width
        Values per cell.
    pixel
        Pixel coordinates: the arrays and the file hold the CSV's 1-based frame, records the 0-based one.
    allowed
        The only valid codes (enumerations).
    to_field, from_field
        One array row -> the record's value, and back (CSV frame); the default keeps the value.
    stored
        The array's dtype when it is not the parsed one (``Possibly_noisy`` parses 0/1, stores bool).
    """

    header: str
    attr: str
    kind: Kind
    field: str
    width: int = 1
    pixel: bool = False
    allowed: frozenset[int] | None = None
    to_field: Callable[[Any], Any] = _same
    from_field: Callable[[Any], Any] = _same
    stored: Any = None

    @property
    def parsed_dtype(self) -> Any:
        """The numpy dtype the cells parse to."""
        return {"text": object, "int": np.int64, "float": np.float64, "age": np.float64}[self.kind]

    @property
    def dtype(self) -> Any:
        """The numpy dtype of the catalog array."""
        return self.stored if self.stored is not None else self.parsed_dtype


def _numbers(count: int, kind: type) -> Callable[[Any], tuple[Any, ...]]:
    return lambda row: tuple(kind(v) for v in row[:count])


SCHEMA: tuple[Column, ...] = (
    Column("File_name", "file_name", "text", "file_name", to_field=str),
    Column("Patient_index", "patient", "int", "patient", to_field=int),
    Column("Study_index", "study", "int", "study", to_field=int),
    Column("Series_ID", "series", "int", "series", to_field=int),
    Column("Key_slice_index", "key_slice", "int", "key_slice", to_field=int),
    Column(
        "Measurement_coordinates",
        "recist_csv",
        "float",
        "recist",
        width=8,
        pixel=True,
        to_field=lambda row: _frozen(row.reshape(4, 2) - CSV_PIXEL_ORIGIN),
        from_field=lambda recist: np.asarray(recist, dtype=np.float64).ravel() + CSV_PIXEL_ORIGIN,
    ),
    Column(
        "Bounding_boxes",
        "box_csv",
        "float",
        "box",
        width=4,
        pixel=True,
        to_field=lambda row: _frozen(row - CSV_PIXEL_ORIGIN),
        from_field=lambda box: np.asarray(box, dtype=np.float64) + CSV_PIXEL_ORIGIN,
    ),
    Column(
        "Lesion_diameters_Pixel_", "diameters_px", "float", "diameters_px", 2, to_field=_numbers(2, float)
    ),
    Column("Normalized_lesion_location", "location", "float", "location", 3, to_field=_numbers(3, float)),
    Column(
        "Coarse_lesion_type",
        "lesion_type",
        "int",
        "lesion_type",
        allowed=frozenset(int(t) for t in LesionType),
        to_field=lambda code: LesionType(int(code)),
        from_field=int,
    ),
    Column(
        "Possibly_noisy",
        "noisy",
        "int",
        "noisy",
        allowed=frozenset({0, 1}),
        to_field=bool,
        from_field=bool,
        stored=bool,
    ),
    Column("Slice_range", "slice_range", "int", "slice_range", 2, to_field=_numbers(2, int)),
    Column("Spacing_mm_px_", "spacing", "float", "spacing", 3, to_field=_numbers(3, float)),
    Column("Image_size", "image_size", "int", "image_size", 2, to_field=_numbers(2, int)),
    Column("DICOM_windows", "window", "float", "window", 2, to_field=_numbers(2, float)),
    Column("Patient_gender", "sex", "text", "sex", to_field=str),
    Column(
        "Patient_age",
        "age",
        "age",
        "age",
        to_field=lambda age: None if math.isnan(age) else float(age),
        from_field=lambda age: math.nan if age is None else age,
    ),
    Column(
        "Train_Val_Test",
        "split",
        "int",
        "split",
        allowed=frozenset(int(s) for s in Split),
        to_field=lambda code: Split(int(code)),
        from_field=int,
    ),
)
"""The columns in the official order."""

COLUMNS: tuple[str, ...] = tuple(c.header for c in SCHEMA)
"""The 18 column names of ``DL_info.csv``, in the official order."""

EXTRA_ARRAYS: tuple[str, ...] = ("age_text", "row", "lesion_index", "extra")
"""Catalog arrays that are not a column: the age's exact text, the row in its file, the official lesion
index (-1 when unknown), and the cells of columns beyond the 18 (N, E)."""

ARRAYS: tuple[str, ...] = tuple(c.attr for c in SCHEMA) + EXTRA_ARRAYS
"""Every array a :class:`~deeplesion.catalog.table.Catalog` holds."""
