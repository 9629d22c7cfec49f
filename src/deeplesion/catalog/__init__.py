"""Read, query and write ``DL_info.csv``, the DeepLesion annotation table (one row per lesion).

Columns are found by header name, never by position; numbers are parsed with numpy, never ``eval``. The
package splits along its seams:

- :mod:`~deeplesion.catalog.records`: :class:`Lesion`, :class:`Split`, :class:`LesionType`, and the
  coordinate convention (the CSV's 1-based pixel frame, the toolkit's 0-based one);
- :mod:`~deeplesion.catalog.schema`: the 18 columns, each declared once;
- :mod:`~deeplesion.catalog.table`: :class:`Catalog`, typed columns with records on demand and queries;
- :mod:`~deeplesion.catalog.dl_info`: the file format (read, write, build from records).

Everything public is importable from ``deeplesion.catalog``.
"""

from deeplesion.catalog.dl_info import (
    DEFAULT_FILE_NAME,
    OFFICIAL_GIT_BLOB_SHA1,
    OFFICIAL_ROWS,
    OFFICIAL_SIZE_BYTES,
    ROOT_ENV_VAR,
    dl_info_text,
    format_number,
    format_rows,
    from_lesions,
    git_blob_sha1,
    load_catalog,
    parse_dl_info,
    resolve_root,
    write_dl_info,
)
from deeplesion.catalog.records import BOX_PADDING_PX, CSV_PIXEL_ORIGIN, Lesion, LesionType, Split, Strictness
from deeplesion.catalog.schema import COLUMNS, SCHEMA, Column
from deeplesion.catalog.table import Catalog, concat

__all__ = [
    "BOX_PADDING_PX",
    "COLUMNS",
    "CSV_PIXEL_ORIGIN",
    "DEFAULT_FILE_NAME",
    "OFFICIAL_GIT_BLOB_SHA1",
    "OFFICIAL_ROWS",
    "OFFICIAL_SIZE_BYTES",
    "ROOT_ENV_VAR",
    "SCHEMA",
    "Catalog",
    "Column",
    "Lesion",
    "LesionType",
    "Split",
    "Strictness",
    "concat",
    "dl_info_text",
    "format_number",
    "format_rows",
    "from_lesions",
    "git_blob_sha1",
    "load_catalog",
    "parse_dl_info",
    "resolve_root",
    "write_dl_info",
]
