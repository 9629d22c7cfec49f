"""deeplesion: get, read, check, convert, view and score the NIH DeepLesion CT dataset.

The public surface is listed in ``__all__``; importing touches neither disk nor network, and never
imports torch, matplotlib or pandas.
"""

from __future__ import annotations

__version__ = "0.1.0"

from deeplesion.catalog import (
    CSV_PIXEL_ORIGIN,
    Catalog,
    Lesion,
    LesionType,
    Split,
    Strictness,
    load_catalog,
    write_dl_info,
)
from deeplesion.errors import (
    AnnotationError,
    DataRootError,
    DeepLesionError,
    ImageError,
    OutputExistsError,
    UsageError,
)
from deeplesion.findings import Finding, Severity
from deeplesion.release import Release, Run, Volume, open_release

open = open_release  # ``deeplesion.open(root)``, the documented entry point
# ``open`` stays out of __all__: ``from deeplesion import *`` must not rebind the builtin open

__all__ = [
    "CSV_PIXEL_ORIGIN",
    "AnnotationError",
    "Catalog",
    "DataRootError",
    "DeepLesionError",
    "Finding",
    "ImageError",
    "Lesion",
    "LesionType",
    "OutputExistsError",
    "Release",
    "Run",
    "Severity",
    "Split",
    "Strictness",
    "UsageError",
    "Volume",
    "__version__",
    "load_catalog",
    "write_dl_info",
]
