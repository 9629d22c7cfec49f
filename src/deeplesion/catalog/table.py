"""The catalog: the annotation table as typed numpy columns, with records on demand and queries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from deeplesion.catalog.records import CSV_PIXEL_ORIGIN, Lesion, LesionType, Split
from deeplesion.catalog.schema import ARRAYS, SCHEMA
from deeplesion.errors import UsageError
from deeplesion.findings import Finding
from deeplesion.names import folder_of


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
        for name in ARRAYS:
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
        fields = {column.field: column.to_field(c[column.attr][i]) for column in SCHEMA}
        lesion_index = int(c["lesion_index"][i])
        return Lesion(**fields, row=int(c["row"][i]), lesion_index=None if lesion_index < 0 else lesion_index)

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
    for name in ARRAYS:
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
