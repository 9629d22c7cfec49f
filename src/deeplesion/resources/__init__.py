"""Data shipped inside the package (see ``SOURCES.md`` beside this file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_dl_info_path() -> Path:
    """Path of the packaged real ``DL_info.csv`` excerpt (158 rows, patients 89-100, official order).

    The rows are real DeepLesion annotations (NIH Clinical Center); see ``resources/SOURCES.md``.
    """
    return Path(str(resources.files(__name__).joinpath("DL_info_sample.csv")))
