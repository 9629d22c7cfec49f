"""The ``DL_info.csv`` format: reading (typed, by header name, one bad cell spoiling only its row),
writing (byte-identical round trip), and building a table from records. The columns are declared once,
in :mod:`deeplesion.catalog.schema`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deeplesion.catalog.records import CSV_PIXEL_ORIGIN, Lesion, Strictness
from deeplesion.catalog.schema import COLUMNS, SCHEMA, Column
from deeplesion.catalog.table import Catalog, concat
from deeplesion.errors import AnnotationError, DataRootError, UsageError
from deeplesion.findings import Finding, make_finding

log = logging.getLogger(__name__)

OFFICIAL_SIZE_BYTES = 8_479_888
OFFICIAL_GIT_BLOB_SHA1 = "f954fe34176b3443f0d89b21e21367754637aa43"
OFFICIAL_ROWS = 32_735

DEFAULT_FILE_NAME = "DL_info.csv"
ROOT_ENV_VAR = "DEEPLESION_ROOT"


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


def _invalid(column: Column, cell: str, wanted: str, label: str, line: int) -> Finding:
    return make_finding(
        "value-invalid",
        f"{column.header} must be {wanted}, found {cell!r}",
        file=label,
        line=line,
        column=column.header,
        value=cell,
    )


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
    for column in SCHEMA:
        cells = cells_of(column.header)
        if column.kind == "text":
            columns[column.attr] = np.array(cells, dtype=object)
        elif column.kind == "age":
            columns[column.attr], invalid = _parse_age(cells)
            for i in invalid:
                bad.setdefault(i, _invalid(column, cells[i], "a number, empty or NaN", label, lines[i]))
            columns["age_text"] = np.array(cells, dtype=object)
        else:
            values = _parse_numeric(
                cells, column.width, column.parsed_dtype, column.header, label, lines, bad
            )
            if column.allowed is not None:
                for j in np.flatnonzero(~np.isin(values, list(column.allowed))).tolist():
                    allowed = f"one of {sorted(column.allowed)}"
                    bad.setdefault(j, _invalid(column, str(values[j]), allowed, label, lines[j]))
            columns[column.attr] = values.astype(column.dtype, copy=False)
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
    shift = CSV_PIXEL_ORIGIN if frame == "project" else 0.0
    texts: list[list[str]] = []
    for column in SCHEMA:
        values = c["age_text"] if column.kind == "age" else c[column.attr]
        if column.pixel and shift:
            values = values - shift
        if column.kind in ("text", "age"):
            texts.append([str(v) for v in values.tolist()])
        elif column.width == 1:
            texts.append([format_number(v) for v in values.astype(column.parsed_dtype).tolist()])
        else:
            texts.append([_join(row) for row in values])
    extra = [[str(v) for v in row] for row in c["extra"].tolist()]
    return [[*cells, *more] for cells, more in zip(zip(*texts, strict=True), extra, strict=True)]


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

    columns: dict[str, npt.NDArray[Any]] = {}
    for column in SCHEMA:
        values = [column.from_field(getattr(x, column.field)) for x in lesions]
        shape = (n, column.width) if column.width > 1 else (n,)
        columns[column.attr] = np.array(values, dtype=column.dtype).reshape(shape)
    columns["age_text"] = np.array(age_text, dtype=object)
    columns["row"] = np.arange(n, dtype=np.int64)
    columns["lesion_index"] = np.full(n, -1, dtype=np.int64)
    columns["extra"] = np.empty((n, 0), dtype=object)
    return Catalog(columns, source=None)
