"""deeplesion: get, read, check, convert, view and score the NIH DeepLesion CT dataset.

The public surface is listed in ``__all__``; importing touches neither disk nor network, and never
imports torch, matplotlib or pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from deeplesion.release import Release, Run, Volume, open_release

    open = open_release  # ``deeplesion.open(root)``, the documented entry point

_RELEASE_NAMES = {"Release", "Run", "Volume", "open_release", "open"}


def __getattr__(name: str) -> Any:
    # The release layer (images, stacks, pipelines, the cache) loads on first use, so commands that
    # only read annotations or score predictions (``deeplesion evaluate``) start faster.
    if name in _RELEASE_NAMES:
        from deeplesion import release

        return release.open_release if name == "open" else getattr(release, name)
    raise AttributeError(f"module 'deeplesion' has no attribute {name!r}")


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
